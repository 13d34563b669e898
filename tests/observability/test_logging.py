"""The one log format: JSON lines with the context fields, readable text on a terminal."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from clvdrift.observability.logging import ROOT_LOGGER, configure, get_logger, log_context


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    logger = logging.getLogger(ROOT_LOGGER)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    for handler in logger.handlers:
        if handler not in saved[0]:
            handler.close()
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_carry_timestamp_level_logger_message_and_context(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure("info", log_file=tmp_path / "logs" / "clvdrift.log", stream=stream)
    log = get_logger("clvdrift.pipeline.cycle")
    with log_context(run_id="cycle_1", model_version="v3"):
        log.info("data drift detected", extra={"drifted_columns": 4, "share": float("nan")})
    log.debug("not at info level")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["level"] == "info" and record["logger"] == "clvdrift.pipeline.cycle"
    assert record["message"] == "data drift detected"
    assert (record["run_id"], record["model_version"]) == ("cycle_1", "v3")
    assert record["drifted_columns"] == 4 and record["share"] is None  # NaN is not valid JSON
    assert record["timestamp"].endswith("Z") and len(record["timestamp"]) == len("2026-11-30T19:12:03.606Z")
    assert json.loads((tmp_path / "logs" / "clvdrift.log").read_text().splitlines()[0]) == record


def test_context_ends_with_the_block_and_nests() -> None:
    stream = io.StringIO()
    configure("info", stream=stream)
    log = get_logger("x")
    with log_context(run_id="outer"):
        with log_context(model_version="v1"):
            log.info("inner")
        log.info("after")
    log.info("outside")
    inner, after, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (inner["run_id"], inner["model_version"]) == ("outer", "v1")
    assert "model_version" not in after and after["run_id"] == "outer"
    assert "run_id" not in outside and outside["logger"] == "clvdrift.x"


def test_a_terminal_gets_a_readable_line() -> None:
    stream = _Tty()
    configure("info", stream=stream)
    with log_context(run_id="r9"):
        get_logger("clvdrift.cli").warning("push failed", extra={"target": "pushgateway"})
    line = stream.getvalue().strip()
    assert not line.startswith("{")
    assert "warning" in line and "clvdrift.cli: push failed" in line and "run_id=r9" in line
    assert "target=pushgateway" in line


def test_exceptions_are_one_field_not_a_traceback() -> None:
    stream = io.StringIO()
    configure("info", stream=stream)
    try:
        raise ValueError("bad value in column X")
    except ValueError:
        get_logger("clvdrift.t").exception("step failed")
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["error"] == "ValueError: bad value in column X"


def test_configure_is_idempotent_and_refuses_unknown_levels() -> None:
    stream = io.StringIO()
    configure("info", stream=stream)
    configure("info", stream=stream)
    get_logger("clvdrift.t").info("once")
    assert len(stream.getvalue().splitlines()) == 1
    with pytest.raises(ValueError, match="log level 'loud'"):
        configure("loud")
    with pytest.raises(ValueError, match="log_context takes"), log_context(user="x"):  # type: ignore[arg-type]
        pass


def test_inside_a_host_records_propagate_and_still_reach_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    configure("info", log_file=tmp_path / "c.log", host_handles_output=True)
    with caplog.at_level(logging.INFO, logger=ROOT_LOGGER):
        get_logger("clvdrift.pipeline.tasks").info("to the host")
    assert "to the host" in caplog.text
    assert json.loads((tmp_path / "c.log").read_text())["message"] == "to the host"
