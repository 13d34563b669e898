"""The ledger of input files: which file contents (sha256) the loop has processed or quarantined.

Keyed by content, not by path: a file renamed or copied is not processed twice, a file rewritten with
new content is new. Recording is idempotent under concurrency: ``INSERT … ON CONFLICT DO NOTHING`` on the
key, then the stored row is returned, so the first writer wins and the others read what it wrote.

A processed file is *checked* (``checked_by``: a run id) once a run finished a drift check of a history
that holds it; until then every cycle checks it again (:meth:`Ledger.unchecked`), so a run that failed
or was killed after taking a file in never loses it. Paths are stored as text that any database takes:
a file name that is not UTF-8 keeps its bytes as ``\\xNN`` escapes (:func:`display_path`).
"""

from __future__ import annotations

import builtins
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from clvdrift.errors import RegistryError
from clvdrift.jsonable import dataclass_dict
from clvdrift.store.db import session_scope
from clvdrift.store.tables import ProcessedFileRow

FileStatus = Literal["processed", "quarantined"]
FILE_STATUSES: tuple[str, ...] = ("processed", "quarantined")


def display_path(path: object) -> str:
    """``path`` (or a text quoting one) as printable text on one line: bytes of a non-UTF-8 name
    (surrogate escapes in Python) become ``\\xNN`` and control characters (tab, newline, escape, …)
    their escapes (``\\t``, ``\\n``, ``\\x1b``), so it can be stored, logged and printed; the file
    itself is opened by its real name."""
    text = os.fsencode(str(path)).decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def as_utc(value: datetime) -> datetime:
    """A stored datetime as timezone-aware UTC (SQLite returns it naive, already in UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class FileRecord:
    """One ledger entry: a file content, where it was seen, and what the loop did with it."""

    sha256: str
    path: str
    status: str
    reason: str | None
    run_id: str | None
    processed_at: datetime
    checked_by: str | None = None

    @classmethod
    def _from_row(cls, row: ProcessedFileRow) -> FileRecord:
        return cls(
            row.sha256, row.path, row.status, row.reason, row.run_id, as_utc(row.processed_at), row.checked_by
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


class Ledger:
    """Reads and writes the ``processed_files`` table; every call is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, sha256: str) -> FileRecord | None:
        """The entry of the content ``sha256``, or ``None`` when the loop has not seen it."""
        with session_scope(self.engine) as session:
            row = session.get(ProcessedFileRow, sha256)
            return FileRecord._from_row(row) if row else None

    def record(
        self,
        sha256: str,
        path: str,
        status: FileStatus,
        reason: str | None = None,
        run_id: str | None = None,
        checked_by: str | None = None,
    ) -> FileRecord:
        """Record the content ``sha256``; an entry recorded already is kept and returned (first wins).

        ``path`` is stored as :func:`display_path` shows it; ``checked_by`` marks a processed file that
        needs no check (it added no row)."""
        if status not in FILE_STATUSES:
            raise RegistryError(
                f"ledger status {status!r} for {path} is not one of {', '.join(FILE_STATUSES)}"
            )
        values = dict(
            sha256=sha256,
            path=display_path(path),
            status=status,
            reason=None if reason is None else display_path(reason),
            run_id=run_id,
            processed_at=datetime.now(UTC),
            checked_by=checked_by,
        )
        with session_scope(self.engine) as session:
            session.execute(self._insert().values(**values).on_conflict_do_nothing(index_elements=["sha256"]))
            row = session.scalar(select(ProcessedFileRow).where(ProcessedFileRow.sha256 == sha256))
            if row is None:  # cannot happen: the row was inserted or a committed one conflicted
                raise RegistryError(f"ledger entry {sha256} of {path} vanished while being recorded")
            return FileRecord._from_row(row)

    def list(self, status: FileStatus | None = None) -> builtins.list[FileRecord]:
        """Every entry (only those with ``status`` when given), oldest first."""
        query = select(ProcessedFileRow).order_by(ProcessedFileRow.processed_at, ProcessedFileRow.sha256)
        if status is not None:
            query = query.where(ProcessedFileRow.status == status)
        with session_scope(self.engine) as session:
            return [FileRecord._from_row(row) for row in session.scalars(query)]

    def count(self, status: FileStatus) -> int:
        """How many entries have ``status``."""
        query = select(func.count()).select_from(ProcessedFileRow).where(ProcessedFileRow.status == status)
        with session_scope(self.engine) as session:
            return int(session.scalar(query) or 0)

    def unchecked(self) -> builtins.list[FileRecord]:
        """Processed files no finished run has checked yet, oldest first."""
        query = (
            select(ProcessedFileRow)
            .where(ProcessedFileRow.status == "processed", ProcessedFileRow.checked_by.is_(None))
            .order_by(ProcessedFileRow.processed_at, ProcessedFileRow.sha256)
        )
        with session_scope(self.engine) as session:
            return [FileRecord._from_row(row) for row in session.scalars(query)]

    def mark_checked(self, sha256s: builtins.list[str], run_id: str) -> int:
        """Record that the run ``run_id`` checked these files (those checked already keep their run)."""
        if not sha256s:
            return 0
        with session_scope(self.engine) as session:
            result = session.execute(
                update(ProcessedFileRow)
                .where(ProcessedFileRow.sha256.in_(sha256s), ProcessedFileRow.checked_by.is_(None))
                .values(checked_by=run_id)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def forget(self, sha256: str) -> bool:
        """Remove the entry of ``sha256`` (its file is then new again); ``False`` when there was none."""
        with session_scope(self.engine) as session:
            result = session.execute(delete(ProcessedFileRow).where(ProcessedFileRow.sha256 == sha256))
            return bool(getattr(result, "rowcount", 0))

    def _insert(self) -> Any:
        """The dialect's ``INSERT`` construct (the one with ``on_conflict_do_nothing``)."""
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            return postgresql.insert(ProcessedFileRow)
        if dialect == "sqlite":
            return sqlite.insert(ProcessedFileRow)
        raise RegistryError(f"the ledger supports SQLite and PostgreSQL stores, not {dialect}")
