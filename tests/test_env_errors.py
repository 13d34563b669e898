"""Problems of the environment, not bugs: a mistyped or unreachable store URL, a missing database driver,
an invalid Pushgateway URL, an out-of-range option, a full disk. The real ``clvdrift`` runs in a
subprocess, as a user or a scheduler runs it: exit 2 (a bad setting) or 3 (store or disk), never 4 (a
bug), one line on stderr, no traceback, and a password in a URL is printed nowhere (stdout, stderr, the
log file, the run history)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from clvdrift import cli
from helpers import synthetic_history  # type: ignore[import-not-found]

CLVDRIFT = Path(sys.executable).parent / "clvdrift"
SECRET = "S3cret"


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connections are refused and no other process can take it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def clvdrift(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``clvdrift *args`` in ``cwd`` with only the given CLVDRIFT_* variables."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLVDRIFT_")}
    return subprocess.run(
        [str(CLVDRIFT), *args],
        cwd=cwd,
        env={**base, "DO_NOT_TRACK": "1", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def assert_hidden(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text, text


# --- the store URL ----------------------------------------------------------------------------------------

# (URL, exit code, words of the message)
BAD_SETTING = 2
UNREACHABLE = 3
STORE_URLS = [
    # does not parse: the colon after the dialect is missing, or a slash, or the scheme altogether
    ("postgresql+psycopg//bob:S3cret@127.0.0.1/db", BAD_SETTING, "cannot be parsed"),
    ("postgresql+psycopg:/bob:S3cret@127.0.0.1/db", BAD_SETTING, "cannot be parsed"),
    ("bob:S3cret@127.0.0.1/db", BAD_SETTING, "cannot be parsed"),
    # ports no socket can use
    ("postgresql+psycopg://bob:S3cret@127.0.0.1:99999/db", BAD_SETTING, "port 99999"),
    ("postgresql+psycopg://bob:S3cret@127.0.0.1:0/db", BAD_SETTING, "port 0"),
    ("postgresql+psycopg://bob:S3cret@127.0.0.1:abc/db", BAD_SETTING, "port is not a number"),
    ("postgresql+psycopg://bob:S3cret@[::1/db", BAD_SETTING, "port is not a number"),
    ("postgresql://bob:S3cret", BAD_SETTING, "port is not a number"),  # the host forgotten
    # drivers and dialects that are not there
    ("postgresql+asyncpg://bob:S3cret@127.0.0.1/db", BAD_SETTING, "not installed"),
    ("nosuchdialect://bob:S3cret@127.0.0.1/db", BAD_SETTING, "no dialect"),
    ("sqlite:///store.db?timeout=abc", BAD_SETTING, "invalid store URL"),
    # well-formed, but the store cannot be opened
    ("postgresql+psycopg://bob:S3cret@127.0.0.1:{closed}/db", UNREACHABLE, "cannot open store"),
    ("postgresql+psycopg://bob:S3cret@127.0.0.1:5432/test", UNREACHABLE, "cannot open store"),
    ("postgresql+psycopg://bob:S3cret@x@127.0.0.1:{closed}/db", UNREACHABLE, "cannot open store"),
    ("postgresql+psycopg://bob:S3cret@127.0.0.1:5432/test?sslmode=bogus", UNREACHABLE, "cannot open store"),
    ("sqlite:////proc/clvdrift/store.db", UNREACHABLE, "cannot open store"),
]


@pytest.mark.parametrize(("url", "code", "words"), STORE_URLS)
def test_a_bad_store_url_is_one_line_exit_2_or_3_and_never_shows_its_password(
    tmp_path: Path, closed_port: int, url: str, code: int, words: str
) -> None:
    url = url.format(closed=closed_port)
    result = clvdrift(tmp_path, "runs", "list", CLVDRIFT_DATABASE_URL=url)
    line = one_line(result)
    assert_hidden(result.stdout, result.stderr)
    assert result.returncode == code, line
    assert line.startswith("error: ") and words in line, line
    if "@" in url:
        assert ":***@" in line, line  # the user stays, the password is replaced


def test_a_database_driver_that_is_not_installed_is_a_bad_setting(tmp_path: Path) -> None:
    import importlib.util

    if importlib.util.find_spec("MySQLdb") is not None:
        pytest.skip("MySQLdb is installed here")
    result = clvdrift(tmp_path, "models", "list", CLVDRIFT_DATABASE_URL="mysql+mysqldb://bob:S3cret@h/db")
    line = one_line(result)
    assert result.returncode == BAD_SETTING, line
    assert "'MySQLdb' is not installed" in line and "mysql+mysqldb://bob:***@h/db" in line
    assert_hidden(result.stdout, result.stderr)


# --- the Pushgateway URL ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http//bob:S3cret@pushgateway:9091", "mistyped scheme"),
        ("http:/bob:S3cret@pushgateway:9091", "mistyped scheme"),
        ("htp://bob:S3cret@pushgateway:9091", "not an http or https URL"),
        ("http://bob:S3cret@pushgateway:99999", "port is not a number"),
        ("http://bob:S3cret@pushgateway:abc", "port is not a number"),
        ("http://bob:S3cret@:9091", "no host"),
    ],
)
def test_an_invalid_pushgateway_url_is_a_bad_setting_and_never_shows_its_password(
    tmp_path: Path, url: str, words: str
) -> None:
    result = clvdrift(tmp_path, "runs", "list", CLVDRIFT_PUSHGATEWAY_URL=url)
    line = one_line(result)
    assert_hidden(result.stdout, result.stderr)
    assert result.returncode == BAD_SETTING, line
    assert "CLVDRIFT_* setting: pushgateway_url" in line and words in line, line


def test_valid_pushgateway_urls_are_accepted(tmp_path: Path) -> None:
    from clvdrift.settings import check_pushgateway_url

    for url in ["http://pushgateway:9091", "https://pg.example.com/prefix", "pushgateway:9091", "[::1]:9091"]:
        assert check_pushgateway_url(url) == url


def test_a_failed_push_shows_no_password_in_output_log_or_run_history(
    tmp_path: Path, closed_port: int
) -> None:
    """A URL that passes the settings but cannot be pushed to: the run goes on (exit 0), and the
    destination and error it records and logs hide the password."""
    env = {
        "CLVDRIFT_PUSHGATEWAY_URL": f"http://bob:{SECRET}@127.0.0.1:{closed_port}",
        "CLVDRIFT_LOG_LEVEL": "info",
        "CLVDRIFT_LOG_FILE": str(tmp_path / "clvdrift.log"),
    }
    monitor = clvdrift(tmp_path, "monitor", **env)
    assert monitor.returncode == 0, monitor.stderr
    runs = clvdrift(tmp_path, "runs", "list", "--json", **env)
    assert runs.returncode == 0, runs.stderr
    log = (tmp_path / "clvdrift.log").read_text()
    assert_hidden(monitor.stdout, monitor.stderr, runs.stdout, runs.stderr, log)
    (run,) = json.loads(runs.stdout)["runs"]
    metrics = run["details"]["metrics"]
    assert metrics["ok"] is False
    assert metrics["destination"] == f"http://bob:***@127.0.0.1:{closed_port}"
    assert f"http://bob:***@127.0.0.1:{closed_port}" in log  # "metrics not published to pushgateway …"

    validate = clvdrift(tmp_path, "validate-metrics", **env)
    assert validate.returncode == BAD_SETTING, validate.stderr
    assert "http://bob:***@127.0.0.1" in one_line(validate)
    assert_hidden(validate.stdout, validate.stderr)


# --- options ----------------------------------------------------------------------------------------------


def test_runs_list_limit_beyond_what_a_store_can_take_is_a_usage_error(cli_workdir, capsys) -> None:
    for limit in ["99999999999999999999", "1000001", "0"]:
        code = cli.run(["runs", "list", "--limit", limit])
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == BAD_SETTING, err
        assert len(lines) == 1 and "--limit" in lines[0] and "Traceback" not in err, err
    assert cli.run(["runs", "list", "--limit", "1000000"]) == 0


# --- a full disk ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "filename", "wrapped", "words"),
    [
        (errno.ENOSPC, "monitoring/reports/drift_x/drift_report.json", False, "disk full (no space left"),
        (errno.ENOSPC, "data/history/part-1.parquet", True, "disk full (no space left on device)"),
        (errno.EDQUOT, "data/history/part-1.parquet", False, "disk quota exceeded"),
        (errno.EROFS, "models/metadata_x.json", True, "read-only file system"),
        (errno.EIO, None, False, "I/O error"),
    ],
)
def test_disk_errors_anywhere_are_exit_3_naming_the_file(
    cli_workdir, capsys, monkeypatch, number: int, filename: str | None, wrapped: bool, words: str
) -> None:
    """Whatever writes (reports, history, models), raised as it is or wrapped by a library: the
    OSError is the environment's, not a bug."""
    error = OSError(number, os.strerror(number), filename)

    def fail(*_args: object, **_kwargs: object) -> None:
        if wrapped:
            raise RuntimeError("a library's own error") from error
        raise error

    monkeypatch.setattr("clvdrift.store.runs.RunStore.list", fail)
    code = cli.run(["runs", "list"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == UNREACHABLE, err
    assert len(lines) == 1 and "Traceback" not in err and "a bug" not in err, err
    assert words in lines[0], lines[0]
    if filename:
        assert f"while writing {filename}" in lines[0], lines[0]


@contextlib.contextmanager
def _tmpfs(where: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``where`` with ``options`` (needs root and the right to mount), unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs mounted at ``tmp_path/disk``."""
    with _tmpfs(tmp_path / "disk", "size=2m") as disk:
        yield disk


def test_training_onto_a_full_disk_is_exit_3_and_leaves_nothing_behind(
    tmp_path: Path, small_disk: Path
) -> None:
    """A real ENOSPC: models on a small tmpfs. The first training fits; the disk is then filled up to
    64 KiB, so the second one writes its profile and reference data and fails on the model."""
    data = tmp_path / "history.csv"
    synthetic_history(data)
    models = small_disk / "models"
    env = {
        "CLVDRIFT_RAW_DATA": str(data),
        "CLVDRIFT_MODELS_DIR": str(models),
        "CLVDRIFT_TRAIN__GBM__MAX_ITER": "50",  # 4x faster to train; its model file still needs > 64 KiB
    }
    first = clvdrift(tmp_path, "train", **env)
    assert first.returncode == 0, first.stderr
    before = sorted(p.name for p in models.iterdir())
    versions = json.loads(clvdrift(tmp_path, "models", "list", "--json", **env).stdout)
    assert len(versions) == 1

    stat = os.statvfs(small_disk)
    free = stat.f_bavail * stat.f_frsize
    (small_disk / "filler").write_bytes(b"\0" * (free - 64 * 1024))
    second = clvdrift(tmp_path, "train", **env)

    line = one_line(second)
    assert second.returncode == 3, line
    assert "disk full" in line and str(models) in line and "none of its files kept" in line, line
    assert sorted(p.name for p in models.iterdir()) == before  # no new version file, no *.tmp
    assert not list(small_disk.rglob("*.tmp"))
    assert json.loads(clvdrift(tmp_path, "models", "list", "--json", **env).stdout) == versions


def test_an_out_on_a_read_only_disk_names_the_file_asked_for_not_a_temporary_one(tmp_path: Path) -> None:
    import pandas as pd

    from clvdrift.errors import ClvdriftError
    from clvdrift.pipeline.predict import OUTPUT_COLUMNS, _write

    with _tmpfs(tmp_path / "ro", "ro,size=1m") as disk:
        frame = pd.DataFrame({c: [1] for c in OUTPUT_COLUMNS}).set_index("CustomerID")
        with pytest.raises(ClvdriftError) as err:
            _write(frame, disk / "predictions.csv")
        message = str(err.value)
        assert str(disk / "predictions.csv") in message and ".tmp" not in message, message
        assert "read-only" in message.lower(), message
