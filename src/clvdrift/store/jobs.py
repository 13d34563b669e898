"""The retrain queue: jobs the worker (``clvdrift worker``) takes, each processed exactly once.

A job is ``queued`` → ``running`` (one worker owns it) → ``done`` | ``failed``.

- :meth:`RetrainJobs.claim` takes the oldest queued job in one transaction: ``SELECT … FOR UPDATE SKIP
  LOCKED`` on PostgreSQL (two workers never take the same row and never wait for each other); on SQLite
  the transaction takes the database's write lock first, so claims take turns. The claim records the
  owner (host, PID, process start time) and starts its heartbeat.
- A running job whose owner is gone is queued again by the next claim: on this host when its process is
  dead (or its PID now belongs to another process), elsewhere when its heartbeat is older than the lease.
  After :data:`MAX_ATTEMPTS` starts it is ``failed`` instead, with the reason.
- :meth:`heartbeat` and :meth:`finish` act only while the caller still owns the job: a worker whose job
  was taken over (it stalled past the lease) cannot finish it a second time.
"""

from __future__ import annotations

import builtins
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select, text

from clvdrift.errors import ConfigError, NotFoundError
from clvdrift.io import ProcessIdentity
from clvdrift.jsonable import dataclass_dict
from clvdrift.store.db import session_scope
from clvdrift.store.ledger import as_utc
from clvdrift.store.tables import RetrainJobRow

__all__ = ["MAX_ATTEMPTS", "RetrainJob", "RetrainJobs"]

MAX_ATTEMPTS = 3
QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


@dataclass(frozen=True)
class RetrainJob:
    job_id: str
    created_at: datetime
    requested_by: str
    reason: str
    status: str
    attempts: int
    owner: str | None
    started_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
    result: dict[str, Any] | None
    error: str | None

    @classmethod
    def _from_row(cls, row: RetrainJobRow) -> RetrainJob:
        def utc(value: datetime | None) -> datetime | None:
            return as_utc(value) if value is not None else None

        return cls(
            row.job_id,
            as_utc(row.created_at),
            row.requested_by,
            row.reason,
            row.status,
            row.attempts,
            row.owner,
            utc(row.started_at),
            utc(row.heartbeat_at),
            utc(row.finished_at),
            dict(row.result) if row.result is not None else None,
            row.error,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclass_dict(self)


def owner_text(identity: ProcessIdentity) -> str:
    return f"{identity.host}|{identity.pid}|{identity.started or ''}"


def _owner(text_: str) -> ProcessIdentity | None:
    try:
        host, pid, started = text_.rsplit("|", 2)
        return ProcessIdentity(host, int(pid), started or None)
    except ValueError:
        return None


def _owned(session: Any, job_id: str, owner: ProcessIdentity) -> RetrainJobRow | None:
    """The job's row, locked, while ``owner`` runs it; ``None`` when it does not (any more)."""
    return session.scalar(  # type: ignore[no-any-return]
        select(RetrainJobRow)
        .where(
            RetrainJobRow.job_id == job_id,
            RetrainJobRow.status == RUNNING,
            RetrainJobRow.owner == owner_text(owner),
        )
        .with_for_update()
    )


class RetrainJobs:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def enqueue(self, requested_by: str, reason: str) -> RetrainJob:
        if not requested_by or len(requested_by) > 64:
            raise ConfigError("a retrain job's requester is 1-64 characters")
        row = RetrainJobRow(
            job_id=f"job_{datetime.now(UTC):%Y%m%d_%H%M%S}_{secrets.token_hex(4)}",
            created_at=datetime.now(UTC),
            requested_by=requested_by,
            reason=reason[:2000],
            status=QUEUED,
            attempts=0,
        )
        with session_scope(self.engine) as session:
            session.add(row)
            session.flush()
            return RetrainJob._from_row(row)

    def get(self, job_id: str) -> RetrainJob:
        with session_scope(self.engine) as session:
            row = session.scalar(select(RetrainJobRow).where(RetrainJobRow.job_id == job_id))
            if row is None:
                raise NotFoundError(f"unknown retrain job {job_id!r}")
            return RetrainJob._from_row(row)

    def list(self, *, limit: int = 50, status: str | None = None) -> builtins.list[RetrainJob]:
        query = select(RetrainJobRow).order_by(RetrainJobRow.id.desc()).limit(limit)
        if status is not None:
            query = query.where(RetrainJobRow.status == status)
        with session_scope(self.engine) as session:
            return [RetrainJob._from_row(r) for r in session.scalars(query)]

    def pending(self) -> int:
        """Jobs queued or running."""
        from sqlalchemy import func

        with session_scope(self.engine) as session:
            return int(
                session.scalar(
                    select(func.count())
                    .select_from(RetrainJobRow)
                    .where(RetrainJobRow.status.in_((QUEUED, RUNNING)))
                )
                or 0
            )

    def claim(self, owner: ProcessIdentity, *, lease_seconds: float) -> RetrainJob | None:
        """Take the oldest queued job for ``owner`` (module docstring), or ``None`` when there is none."""
        now = datetime.now(UTC)
        with session_scope(self.engine) as session:
            postgres = session.get_bind().dialect.name == "postgresql"
            if not postgres:  # take SQLite's write lock before reading: claims take turns
                session.execute(text("UPDATE retrain_jobs SET id = id WHERE 1 = 0"))
            self._requeue_abandoned(session, now, lease_seconds, postgres)
            query = select(RetrainJobRow).where(RetrainJobRow.status == QUEUED).order_by(RetrainJobRow.id)
            if postgres:
                query = query.with_for_update(skip_locked=True)
            row = session.scalar(query.limit(1))
            if row is None:
                return None
            row.status, row.owner = RUNNING, owner_text(owner)
            row.started_at = row.heartbeat_at = now
            row.attempts += 1
            session.flush()
            return RetrainJob._from_row(row)

    def _requeue_abandoned(self, session: Any, now: datetime, lease_seconds: float, postgres: bool) -> None:
        query = select(RetrainJobRow).where(RetrainJobRow.status == RUNNING)
        if postgres:
            query = query.with_for_update(skip_locked=True)
        for row in session.scalars(query):
            identity = _owner(row.owner or "")
            alive = identity.alive() if identity is not None else None
            beat = as_utc(row.heartbeat_at) if row.heartbeat_at else None
            expired = beat is None or now - beat > timedelta(seconds=lease_seconds)
            if alive is False or (alive is None and expired):
                why = (
                    f"its worker ({row.owner}) "
                    + ("died" if alive is False else f"sent no heartbeat for {lease_seconds:g} s")
                    + f" during attempt {row.attempts}"
                )
                if row.attempts >= MAX_ATTEMPTS:
                    row.status, row.finished_at = FAILED, now
                    row.error = f"{why}; given up after {row.attempts} attempts"
                else:
                    row.status, row.error = QUEUED, why
                row.owner = None

    def heartbeat(self, job_id: str, owner: ProcessIdentity) -> bool:
        """Renew the lease; ``False`` when ``owner`` no longer owns the job."""
        with session_scope(self.engine) as session:
            row = _owned(session, job_id, owner)
            if row is None:
                return False
            row.heartbeat_at = datetime.now(UTC)
            return True

    def release(self, job_id: str, owner: ProcessIdentity, reason: str) -> bool:
        """Put a job its owner could not finish (it was stopped) back in the queue."""
        with session_scope(self.engine) as session:
            row = _owned(session, job_id, owner)
            if row is None:
                return False
            row.status, row.owner, row.error = QUEUED, None, reason
            return True

    def finish(
        self,
        job_id: str,
        owner: ProcessIdentity,
        *,
        ok: bool,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> bool:
        """Record the outcome; ``False`` (nothing recorded) when ``owner`` no longer owns the job."""
        with session_scope(self.engine) as session:
            row = _owned(session, job_id, owner)
            if row is None:
                return False
            row.status = DONE if ok else FAILED
            row.finished_at = datetime.now(UTC)
            row.result, row.error = result, error
            return True
