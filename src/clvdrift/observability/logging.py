"""The one log format of clvdrift: a JSON object per line, or a readable line on a terminal.

Every record carries ``timestamp`` (RFC 3339 UTC, milliseconds, ``Z``), ``level`` (lower case),
``logger``, ``message``, and the context of :func:`log_context` (``run_id``, ``model_version``,
``request_id``) plus the record's ``extra`` fields; passwords in URLs are hidden in the message, the
string extras and the error (:func:`clvdrift.urls.mask_url`). The CLI, the pipeline, the Airflow tasks
and the service all log through the ``clvdrift`` logger; :func:`configure` (called by adapters only)
sets where it goes. Promtail parses the JSON lines (deploy/promtail/promtail-config.yml).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from clvdrift.jsonable import plain
from clvdrift.urls import mask_url

ROOT_LOGGER = "clvdrift"
CONTEXT_KEYS: tuple[str, ...] = ("run_id", "model_version", "request_id")
_context: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "clvdrift_log_context", default=()
)
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_HANDLER_MARK = "_clvdrift_handler"


def get_logger(name: str) -> logging.Logger:
    """The logger of a clvdrift module (``__name__``), under the ``clvdrift`` root."""
    return logging.getLogger(name if name.startswith(ROOT_LOGGER) else f"{ROOT_LOGGER}.{name}")


@contextmanager
def log_context(**values: str | None) -> Iterator[None]:
    """Add ``run_id`` / ``model_version`` / ``request_id`` to every record logged inside the block."""
    unknown = set(values) - set(CONTEXT_KEYS)
    if unknown:
        raise ValueError(f"log_context takes {', '.join(CONTEXT_KEYS)}, not {', '.join(sorted(unknown))}")
    merged = {**dict(_context.get()), **{k: str(v) for k, v in values.items() if v is not None}}
    token = _context.set(tuple(merged.items()))
    try:
        yield
    finally:
        _context.reset(token)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
    out: dict[str, Any] = {
        "timestamp": stamp.replace("+00:00", "Z"),
        "level": record.levelname.lower(),
        "logger": record.name,
        "message": mask_url(record.getMessage()),
        **dict(_context.get()),
    }
    for key, value in record.__dict__.items():
        if key not in _STANDARD and not key.startswith("_"):
            out[key] = mask_url(value) if isinstance(value, str) else value
    if record.exc_info and record.exc_info[0] is not None:
        out["error"] = mask_url(f"{record.exc_info[0].__name__}: {record.exc_info[1]}")
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per line (NaN-safe, see :mod:`clvdrift.jsonable`)."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(plain(_fields(record)), ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """``HH:MM:SS level logger: message key=value …`` for a person at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        head = f"{fields.pop('timestamp')[11:19]} {fields.pop('level'):<7} {fields.pop('logger')}: "
        message = fields.pop("message")
        rest = " ".join(f"{k}={v}" for k, v in fields.items())
        return head + message + (f"  {rest}" if rest else "")


def configure(
    level: str = "warning",
    log_file: Path | None = None,
    stream: TextIO | None = None,
    *,
    host_handles_output: bool = False,
) -> None:
    """Route the ``clvdrift`` logger; idempotent (replaces the handlers it added before).

    Records go to ``stream`` (default stderr: text on a terminal, JSON otherwise) and, when given, to
    ``log_file`` (always JSON, appended). ``host_handles_output`` (Airflow tasks): no stream handler;
    records propagate to the host's handlers (Airflow's task log) and still go to ``log_file``.
    """
    logger = logging.getLogger(ROOT_LOGGER)
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"log level {level!r} is not one of debug, info, warning, error, critical")
    for handler in [h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)]:
        logger.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = []
    if not host_handles_output:
        stream = stream if stream is not None else sys.stderr
        console = logging.StreamHandler(stream)
        console.setFormatter(TextFormatter() if stream.isatty() else JsonFormatter())
        handlers.append(console)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(JsonFormatter())
        handlers.append(file_handler)
    for handler in handlers:
        setattr(handler, _HANDLER_MARK, True)
        logger.addHandler(handler)
    logger.setLevel(numeric)
    logger.propagate = host_handles_output


def current_context() -> dict[str, str]:
    """The :func:`log_context` values in effect (e.g. to pass a run id on to another process)."""
    return dict(_context.get())
