"""Engine and sessions. ``sqlite:///…`` by default, ``postgresql+psycopg://…`` in production.

:func:`connect` brings the schema to the newest Alembic revision (``store/migrations``). It is called
by every command, so the common case — the store is already at head — costs one ``SELECT`` and no
Alembic import. Otherwise the upgrade runs under a lock that concurrent first commands share:
``pg_advisory_lock`` on PostgreSQL, an exclusive ``flock`` on ``<database file>.lock`` on SQLite.
"""

from __future__ import annotations

import fcntl
import os
import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.orm import Session

from clvdrift.errors import ConfigError, RegistryError
from clvdrift.store.migrations import BASELINE, HEAD, LOCATION
from clvdrift.urls import mask_url

MIGRATION_LOCK_KEY = int.from_bytes(b"clvdrift", "big")
"""The ``pg_advisory_lock`` key every clvdrift process takes while migrating a PostgreSQL database."""
MIGRATION_LOCK_TIMEOUT = "120s"
"""How long a process waits for another one's migration before giving up (PostgreSQL ``lock_timeout``)."""

SQLITE_WAL_SWITCH_SECONDS = 10.0
"""How long opening a SQLite store retries switching it to write-ahead logging (see ``_sqlite_pragmas``)."""

_TRANSIENT_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected


CONNECT_TIMEOUT_SECONDS = 15
"""How long a PostgreSQL connection may take to open (unless the URL sets ``connect_timeout``)."""


def connect(url: str, **engine_kwargs: object) -> Engine:
    """Create an engine for ``url`` and bring its schema to the newest migration.

    Safe when several processes call it at once on a fresh store, and on a store created before the
    migrations existed (stamped at the baseline, then upgraded). Every error names the URL with its
    password hidden (:func:`clvdrift.urls.mask_url`, also when the URL does not parse):
    :class:`ConfigError` when the URL itself is wrong (does not parse, a port outside 1-65535, an unknown
    dialect, a database driver that is not installed), :class:`RegistryError` when the store is
    unreachable, its folder cannot be created, or its schema is newer than this code.
    """
    parsed = _parse(url)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        folder = Path(url.removeprefix("sqlite:///")).expanduser().resolve().parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(
                f"cannot open store {_safe(url)}: cannot create {folder}: {exc.strerror}"
            ) from exc
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        # a server that accepts the connection and never answers must not hang a command forever
        engine_kwargs.setdefault("connect_args", {"connect_timeout": CONNECT_TIMEOUT_SECONDS})
    try:
        engine = create_engine(parsed, **engine_kwargs)  # type: ignore[arg-type]
    except NoSuchModuleError as exc:
        raise ConfigError(
            f"invalid store URL {_safe(url)}: SQLAlchemy has no dialect {parsed.drivername!r} "
            f"(e.g. sqlite:///clvdrift.db, postgresql+psycopg://user@host:5432/db)"
        ) from exc
    except ImportError as exc:  # the dialect exists, its DBAPI module is not installed
        raise ConfigError(
            f"invalid store URL {_safe(url)}: its database driver {exc.name or parsed.get_driver_name()!r} "
            f"is not installed (install it, or use postgresql+psycopg or sqlite)"
        ) from exc
    except (SQLAlchemyError, ValueError, TypeError) as exc:  # e.g. a query argument of the wrong type
        raise ConfigError(f"invalid store URL {_safe(url)}: {_safe(_first_line(exc))}") from exc
    try:
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        if _revision(engine) != HEAD:
            with _migration_lock(engine) as conn:
                _upgrade(conn)
    except SQLAlchemyError as exc:
        raise RegistryError(f"cannot open store {_safe(url)}: {_safe(_first_line(exc))}") from exc
    return engine


def _parse(url: str) -> URL:
    """``url`` parsed, with a port a socket can use; :class:`ConfigError` (password hidden) otherwise."""
    expected = (
        "expected dialect+driver://user:password@host:port/database, "
        "e.g. postgresql+psycopg://user@host:5432/db"
    )
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        why = "the port is not a number" if isinstance(exc, ValueError) else "it cannot be parsed"
        raise ConfigError(f"invalid store URL {_safe(url)}: {why}; {expected}") from exc
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise ConfigError(f"invalid store URL {_safe(url)}: port {parsed.port} is not in 1-65535")
    return parsed


def is_transient(exc: SQLAlchemyError) -> bool:
    """Whether retrying the transaction may succeed: serialization failure, deadlock, SQLite busy."""
    if not isinstance(exc, DBAPIError):
        return False
    if getattr(exc.orig, "sqlstate", None) in _TRANSIENT_SQLSTATES:
        return True
    return "database is locked" in str(exc.orig) or "database table is locked" in str(exc.orig)


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: committed on success, rolled back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            raise RegistryError(f"store error: {_safe(_first_line(exc))}") from exc
        except BaseException:
            session.rollback()
            raise


def migrate(url: str) -> str | None:
    """Bring the store at ``url`` to the newest schema (what :func:`connect` does) and return its revision:
    the deployment step of its own (``clvdrift migrate``: the compose stack's and Kubernetes' migration
    job), so that servers and workers start on a migrated store."""
    engine = connect(url)
    try:
        return _revision(engine)
    finally:
        engine.dispose()


def _revision(engine: Engine) -> str | None:
    """The store's Alembic revision, or ``None`` when it has none yet (one query, no Alembic import)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    if revision is not None and revision > HEAD:
        raise RegistryError(
            f"store {_safe(engine.url.render_as_string())} has schema revision {revision}, newer than this "
            f"clvdrift's {HEAD}: upgrade clvdrift"
        )
    return revision


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection held under the store's migration lock (see the module docstring)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"SET lock_timeout = '{MIGRATION_LOCK_TIMEOUT}'"))
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            conn.commit()
            try:
                yield conn
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                conn.execute(text("RESET lock_timeout"))
                conn.commit()
        elif engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            lock_path = f"{os.path.abspath(str(engine.url.database))}.lock"
            with open(lock_path, "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    yield conn
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
        else:
            yield conn


def _upgrade(conn: Connection) -> None:
    """Upgrade to head on ``conn``; a pre-Alembic store (tables, no version) is stamped at the baseline."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(LOCATION))
    config.attributes["connection"] = conn
    with conn.begin():
        tables = set(inspect(conn).get_table_names())
        if "alembic_version" not in tables and "model_versions" in tables:
            command.stamp(config, BASELINE)
        command.upgrade(config, "head")


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    """Wait for locks instead of failing; write-ahead log, so readers never block the writer.

    WAL mode is stored in the file, so it is switched once. The switch needs an exclusive lock and
    SQLite reports "database is locked" at once (no busy wait) while other processes open the file:
    it is retried for up to ``SQLITE_WAL_SWITCH_SECONDS``.
    """
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA busy_timeout=10000")
        deadline = time.monotonic() + SQLITE_WAL_SWITCH_SECONDS
        while cur.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            try:
                cur.execute("PRAGMA journal_mode=WAL")  # in-memory stores keep their mode: no error
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.005, 0.05))  # jitter: the openers must not retry in step
    finally:
        cur.close()


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _safe(text: str) -> str:
    """``text`` (a URL, parseable or not, or a message) with every password hidden."""
    return mask_url(text)
