"""The online side's records: ingestion requests, drift events and logged prediction batches.

Every call is one transaction. Ingestion requests with an ``Idempotency-Key`` are inserted with ``ON
CONFLICT DO NOTHING`` on the key and the stored row is returned, so of two concurrent requests with the
same key the first one's answer is the answer of both.
"""

from __future__ import annotations

import builtins
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from clvdrift.errors import RegistryError
from clvdrift.jsonable import dataclass_dict
from clvdrift.store.db import session_scope
from clvdrift.store.ledger import as_utc
from clvdrift.store.tables import DriftEventRow, IngestRequestRow, PredictionBatchRow

__all__ = [
    "BatchClaim",
    "DriftEvent",
    "DriftEvents",
    "IngestLog",
    "IngestRecord",
    "PredictionBatch",
    "PredictionLog",
]


def _insert(engine: Engine, table: Any) -> Any:
    dialect = engine.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RegistryError(f"the store supports SQLite and PostgreSQL, not {dialect}")


@dataclass(frozen=True)
class IngestRecord:
    request_id: str
    idempotency_key: str | None
    request_sha256: str
    created_at: datetime
    accepted: int
    rejected: int
    rows_added: int
    batch_id: str | None
    reasons: dict[str, int]
    response: dict[str, Any]

    @classmethod
    def _from_row(cls, row: IngestRequestRow) -> IngestRecord:
        return cls(
            row.request_id,
            row.idempotency_key,
            row.request_sha256,
            as_utc(row.created_at),
            row.accepted,
            row.rejected,
            row.rows_added,
            row.batch_id,
            dict(row.reasons),
            dict(row.response),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


class IngestLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def by_key(self, key: str) -> IngestRecord | None:
        with session_scope(self.engine) as session:
            row = session.scalar(select(IngestRequestRow).where(IngestRequestRow.idempotency_key == key))
            return IngestRecord._from_row(row) if row else None

    def record(self, record: IngestRecord) -> IngestRecord:
        """Store ``record``; with an idempotency key recorded already, the stored one is returned."""
        values = {k: v for k, v in record.to_dict().items()}
        values["created_at"] = record.created_at
        with session_scope(self.engine) as session:
            statement = _insert(self.engine, IngestRequestRow).values(**values)
            if record.idempotency_key is not None:
                statement = statement.on_conflict_do_nothing(index_elements=["idempotency_key"])
            session.execute(statement)
            if record.idempotency_key is None:
                return record
            row = session.scalar(
                select(IngestRequestRow).where(IngestRequestRow.idempotency_key == record.idempotency_key)
            )
            assert row is not None  # inserted, or a committed one conflicted
            return IngestRecord._from_row(row)

    def stats(self) -> dict[str, Any]:
        """Requests, rows accepted, rejected (by reason) and added, and the newest request."""
        with session_scope(self.engine) as session:
            totals = session.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(IngestRequestRow.accepted), 0),
                    func.coalesce(func.sum(IngestRequestRow.rejected), 0),
                    func.coalesce(func.sum(IngestRequestRow.rows_added), 0),
                )
            ).one()
            reasons: Counter[str] = Counter()
            rows: list[dict[str, Any]] = list(
                session.scalars(select(IngestRequestRow.reasons).where(IngestRequestRow.rejected > 0))
            )
            for counts in rows:
                reasons.update({str(k): int(v) for k, v in counts.items()})
            last = session.scalar(select(IngestRequestRow).order_by(IngestRequestRow.id.desc()).limit(1))
            return {
                "requests": int(totals[0]),
                "rows_accepted": int(totals[1]),
                "rows_rejected": int(totals[2]),
                "rows_added": int(totals[3]),
                "rejects_by_reason": dict(reasons.most_common()),
                "last_request": IngestRecord._from_row(last).to_dict() if last else None,
            }


@dataclass(frozen=True)
class DriftEvent:
    event_id: str
    created_at: datetime
    source: str
    model_version: str
    rows: int
    severity: str
    result: dict[str, Any]

    @classmethod
    def _from_row(cls, row: DriftEventRow) -> DriftEvent:
        return cls(
            row.event_id,
            as_utc(row.created_at),
            row.source,
            row.model_version,
            row.rows,
            row.severity,
            dict(row.result),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


class DriftEvents:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, event: DriftEvent) -> DriftEvent:
        with session_scope(self.engine) as session:
            session.add(DriftEventRow(**{**event.to_dict(), "created_at": event.created_at}))
        return event

    def list(self, *, limit: int = 100, model_version: str | None = None) -> builtins.list[DriftEvent]:
        """The newest ``limit`` events, newest first."""
        query = select(DriftEventRow).order_by(DriftEventRow.id.desc()).limit(limit)
        if model_version is not None:
            query = query.where(DriftEventRow.model_version == model_version)
        with session_scope(self.engine) as session:
            return [DriftEvent._from_row(r) for r in session.scalars(query)]


@dataclass(frozen=True)
class PredictionBatch:
    batch_id: str
    created_at: datetime
    model_version: str
    rows: int
    part_file: str
    part_sha256: str
    checked_by: str | None

    @classmethod
    def _from_row(cls, row: PredictionBatchRow) -> PredictionBatch:
        return cls(
            row.batch_id,
            as_utc(row.created_at),
            row.model_version,
            row.rows,
            row.part_file,
            row.part_sha256,
            row.checked_by,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


class BatchClaim:
    """Batches held by :meth:`PredictionLog.claim`."""

    def __init__(self, session: Any, rows: builtins.list[PredictionBatchRow]) -> None:
        self._session, self._rows = session, rows
        self.batches = [PredictionBatch._from_row(r) for r in rows]

    def done(self, event: DriftEvent, checked: builtins.list[str]) -> None:
        """Record ``event`` and mark the ``checked`` batches (ids among :attr:`batches`) as checked by it,
        in the claim's transaction."""
        self._session.add(DriftEventRow(**{**event.to_dict(), "created_at": event.created_at}))
        for row in self._rows:
            if row.batch_id in checked:
                row.checked_by = event.event_id
        self._session.flush()


class PredictionLog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, batch: PredictionBatch) -> PredictionBatch:
        with session_scope(self.engine) as session:
            session.add(PredictionBatchRow(**{**batch.to_dict(), "created_at": batch.created_at}))
        return batch

    def unchecked(self, model_version: str | None = None) -> builtins.list[PredictionBatch]:
        query = select(PredictionBatchRow).where(PredictionBatchRow.checked_by.is_(None))
        if model_version is not None:
            query = query.where(PredictionBatchRow.model_version == model_version)
        with session_scope(self.engine) as session:
            return [
                PredictionBatch._from_row(r) for r in session.scalars(query.order_by(PredictionBatchRow.id))
            ]

    @contextmanager
    def claim(self, model_version: str) -> Iterator[BatchClaim]:
        """The unchecked batches of ``model_version``, held in one transaction until the block ends: the
        caller checks them and records its event with :meth:`BatchClaim.done`, and the event and the
        batches' ``checked_by`` commit together (or not at all). Two workers never check the same batch:
        PostgreSQL skips rows another transaction holds (``FOR UPDATE SKIP LOCKED``), SQLite's write lock
        makes the claims take turns."""
        with session_scope(self.engine) as session:
            postgres = session.get_bind().dialect.name == "postgresql"
            if not postgres:  # take SQLite's write lock before reading
                session.execute(text("UPDATE prediction_batches SET id = id WHERE 1 = 0"))
            query = (
                select(PredictionBatchRow)
                .where(
                    PredictionBatchRow.checked_by.is_(None), PredictionBatchRow.model_version == model_version
                )
                .order_by(PredictionBatchRow.id)
            )
            if postgres:
                query = query.with_for_update(skip_locked=True)
            rows = list(session.scalars(query))
            yield BatchClaim(session, rows)

    def mark_checked(self, batch_ids: builtins.list[str], event_id: str) -> int:
        if not batch_ids:
            return 0
        with session_scope(self.engine) as session:
            result = session.execute(
                update(PredictionBatchRow)
                .where(PredictionBatchRow.batch_id.in_(batch_ids), PredictionBatchRow.checked_by.is_(None))
                .values(checked_by=event_id)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def count(self) -> tuple[int, int]:
        """Logged batches and rows."""
        with session_scope(self.engine) as session:
            n, rows = session.execute(
                select(func.count(), func.coalesce(func.sum(PredictionBatchRow.rows), 0))
            ).one()
            return int(n), int(rows)


def now() -> datetime:
    return datetime.now(UTC)


# ---- the dashboard's queries (clvdrift.service.routes.dashboard)
def ingest_timeline(engine: Engine, *, limit: int = 1000) -> builtins.list[dict[str, Any]]:
    """The newest ``limit`` ingestion requests' time and row counts (``created_at``, ``accepted``,
    ``rejected``, ``rows_added``), oldest first."""
    row = IngestRequestRow
    query = (
        select(row.created_at, row.accepted, row.rejected, row.rows_added)
        .order_by(row.id.desc())
        .limit(limit)
    )
    with session_scope(engine) as session:
        found = session.execute(query).all()
    return [
        {"created_at": as_utc(t).isoformat(), "accepted": a, "rejected": r, "rows_added": n}
        for t, a, r, n in reversed(found)
    ]


def drift_event_count(engine: Engine) -> int:
    """How many online drift events are stored."""
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(DriftEventRow)) or 0)
