"""The training lock: one training (retrain → gate → register) at a time per store, across processes.

- PostgreSQL: ``pg_try_advisory_lock`` on a dedicated connection kept open for the block, so it works
  across machines and is released by the server when the holder dies (its connection closes). The holder
  writes ``pid … on host …`` into its ``application_name``; a refused process reads it, with the time the
  lock was taken, from ``pg_stat_activity`` joined to ``pg_locks``.
- SQLite: ``flock(LOCK_EX | LOCK_NB)`` on ``<database file>.<name>.lock``, released by the kernel when
  the holder dies; the holder writes its pid, host and start time into that file (in place: the lock is
  on the file itself, so it cannot be replaced atomically). ``:memory:`` stores get a process-local lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from clvdrift.errors import LockBusyError, RegistryError

POLL_SECONDS = 0.05
"""Pause between two attempts while ``wait_seconds`` has not run out."""
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_memory_locks: dict[str, tuple[threading.Lock, dict[str, Any]]] = {}
_memory_guard = threading.Lock()

_PG_HELD = text(
    "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
    "AND pid = pg_backend_pid() AND classid::bigint = :hi AND objid::bigint = :lo"
)
_PG_NO_IDLE_TIMEOUT = text(  # PostgreSQL 14+ has the setting; older servers have nothing to turn off
    "SELECT set_config(name, '0', false) FROM pg_settings WHERE name = 'idle_session_timeout'"
)
_PG_HOLDER = text(
    "SELECT a.application_name, a.state_change, a.pid FROM pg_locks l JOIN pg_stat_activity a "
    "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.classid::bigint = :hi AND l.objid::bigint = :lo "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
)


@contextmanager
def training_lock(
    engine: Engine,
    *,
    name: str = "training",
    wait_seconds: float = 0.0,
    busy: str | None = None,
    hint: str = "",
) -> Iterator[HeldLock]:
    """Hold the store's lock ``name`` for the block; :class:`LockBusyError` when another holder has it.

    ``wait_seconds`` is how long to keep trying before giving up (0: one attempt). The error says
    ``busy`` (default "another <name> holds the lock"), since when and who holds it, then ``hint``.
    """
    busy = (busy or f"another {name} holds the lock") + "{holder}" + (f": {hint}" if hint else "")
    if not _NAME.fullmatch(name):
        raise RegistryError(f"lock name {name!r} must be 1-64 letters, digits, '_' or '-'")
    dialect = engine.dialect.name
    database = engine.url.database
    if dialect == "postgresql":
        lock = _postgresql_lock(engine, name, wait_seconds, busy)
    elif dialect == "sqlite" and database not in (None, "", ":memory:"):
        lock = _file_lock(f"{os.path.abspath(str(database))}.{name}.lock", name, wait_seconds, busy)
    elif dialect == "sqlite":
        lock = _memory_lock(name, wait_seconds, busy)
    else:
        raise RegistryError(f"the training lock supports SQLite and PostgreSQL stores, not {dialect}")
    with lock as held:
        yield held


class HeldLock:
    """What :func:`training_lock` yields: :meth:`ensure_held` before a step that must not run twice.

    A file lock (SQLite) is held until its holder dies. A PostgreSQL advisory lock lives as long as its
    database session, which a server restart, a failover or an administrator can end while the holder
    runs on: then another process can take the lock, and the holder must stop before changing more.
    """

    def __init__(self, name: str, check: Callable[[], bool] | None = None) -> None:
        self.name = name
        self._check = check

    def ensure_held(self) -> None:
        """Raise :class:`RegistryError` when the lock was lost (its database session ended)."""
        if self._check is not None and not self._check():
            raise RegistryError(
                f"lost the {self.name} lock: its database session ended (server restart, failover, "
                "idle timeout, a terminated backend); stopping before changing anything else"
            )


def lock_key(name: str) -> int:
    """The signed 64-bit advisory lock key of ``name`` (stable across processes and machines)."""
    return int.from_bytes(hashlib.sha256(f"clvdrift:{name}".encode()).digest()[:8], "big", signed=True)


def _holder() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": _now()}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _busy(busy: str, holder: dict[str, Any] | None) -> LockBusyError:
    """The error of a busy lock: ``busy`` with ``{holder}`` replaced by who holds it."""
    if not holder:
        return LockBusyError(busy.format(holder=" (holder unknown, it may just have ended; try again)"))
    who = f" since {holder.get('since', '?')}, pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"
    return LockBusyError(busy.format(holder=who))


def _poll(attempt: Callable[[], bool], wait_seconds: float) -> bool:
    """Call ``attempt`` until it returns ``True`` or ``wait_seconds`` have passed (at least once)."""
    deadline = time.monotonic() + wait_seconds
    while not attempt():
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


@contextmanager
def _postgresql_lock(engine: Engine, name: str, wait_seconds: float, busy: str) -> Iterator[HeldLock]:
    key = lock_key(name)
    me = _holder()
    try:
        conn = engine.connect()
    except SQLAlchemyError as exc:
        raise RegistryError(f"cannot take the {name} lock: {_first_line(exc)}") from exc
    try:
        try:
            conn.execute(
                text("SELECT set_config('application_name', :app, false)"),
                {"app": f"pid {me['pid']} on host {me['host']}"[:63]},
            )
            acquired = _poll(lambda: _pg_try(conn, key), wait_seconds)
            holder = None if acquired else _pg_holder(conn, key)
            conn.execute(_PG_NO_IDLE_TIMEOUT)  # the session idles while the block works: keep it
            conn.commit()  # no transaction stays open while the block runs; the advisory lock does
        except SQLAlchemyError as exc:
            raise RegistryError(f"cannot take the {name} lock: {_first_line(exc)}") from exc
        if not acquired:
            raise _busy(busy, holder)
        try:
            yield HeldLock(name, lambda: _pg_held(conn, key))
        finally:
            _pg_unlock(conn, key)
    finally:
        conn.invalidate()  # closed, not pooled: nothing of this session (name, lock) outlives the block
        conn.close()


def _pg_held(conn: Connection, key: int) -> bool:
    """Whether this session still holds the advisory lock ``key`` (``False`` when the session is gone)."""
    try:
        held = conn.execute(_PG_HELD, {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF}).scalar()
        conn.commit()
    except SQLAlchemyError:
        return False
    return bool(held)


def _pg_try(conn: Connection, key: int) -> bool:
    return bool(conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())


def _pg_unlock(conn: Connection, key: int) -> None:
    """Release at once; a failure is left to the close that follows (the server releases it then)."""
    try:
        conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
        conn.commit()
    except SQLAlchemyError:
        return


def _pg_holder(conn: Connection, key: int) -> dict[str, Any] | None:
    """Who holds the advisory lock ``key``: its ``application_name`` parsed, and when it took it."""
    row = conn.execute(_PG_HOLDER, {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF}).first()
    if row is None:
        return None
    app: str | None = row[0]
    since: datetime = row[1]
    found = re.fullmatch(r"pid (\d+) on host (.*)", app or "")
    pid, host = found.groups() if found else (f"? (server backend {row[2]})", "?")
    return {"pid": pid, "host": host, "since": since.astimezone(UTC).isoformat(timespec="seconds")}


@contextmanager
def _file_lock(path: str, name: str, wait_seconds: float, busy: str) -> Iterator[HeldLock]:
    try:
        handle = open(path, "a+")  # noqa: SIM115 - held open for the whole block
    except OSError as exc:
        raise RegistryError(f"cannot open the {name} lock file {path}: {exc.strerror}") from exc
    with handle:
        if not _poll(lambda: _try_flock(handle), wait_seconds):
            raise _busy(busy, _read_holder(handle))
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(_holder()))
            handle.flush()
            yield HeldLock(name)  # held until this process dies
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def _try_flock(handle: IO[str]) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _read_holder(handle: IO[str]) -> dict[str, Any] | None:
    """The holder written in the lock file, ``None`` when it is not written (yet) or unreadable."""
    handle.seek(0)
    try:
        holder = json.loads(handle.read() or "null")
    except ValueError:
        return None
    return holder if isinstance(holder, dict) else None


@contextmanager
def _memory_lock(name: str, wait_seconds: float, busy: str) -> Iterator[HeldLock]:
    with _memory_guard:
        lock, holder = _memory_locks.setdefault(name, (threading.Lock(), {}))
    acquired = lock.acquire(timeout=wait_seconds) if wait_seconds > 0 else lock.acquire(blocking=False)
    if not acquired:
        raise _busy(busy, dict(holder))
    try:
        holder.update(_holder())
        yield HeldLock(name)
    finally:
        holder.clear()
        lock.release()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
