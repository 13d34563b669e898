"""Engine and sessions. ``sqlite:///…`` by default, ``postgresql+psycopg://…`` in production."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from clvdrift.errors import RegistryError
from clvdrift.store.tables import Base


def connect(url: str, **engine_kwargs: object) -> Engine:
    """Create an engine for ``url`` and make sure the tables exist.

    Raises :class:`RegistryError` naming the URL (password hidden) when the store is unreachable.
    """
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url, **engine_kwargs)  # type: ignore[arg-type]
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(engine)
    except SQLAlchemyError as exc:
        raise RegistryError(f"cannot open store {_safe(url)}: {str(exc).splitlines()[0]}") from exc
    return engine


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparseable URL is reported as given
        return url


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One transaction: committed on success, rolled back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except SQLAlchemyError as exc:
            session.rollback()
            raise RegistryError(f"store error: {str(exc).splitlines()[0]}") from exc
        except BaseException:
            session.rollback()
            raise
