"""Model registry in the store: every version with its metrics, and which one is the champion.

The registry row is the source of truth for "which version is champion": a partial unique index
(``store/tables.py``) lets the database hold one champion at most, and every change of champion —
demote the old one, crown the new one — is one transaction. Concurrent changes that collide on the
index (or on a deadlock or a busy SQLite file) are retried a few times; the files ``*_latest`` and
``reference_data.csv`` follow the registry (:func:`clvdrift.model.artifacts.publish_champion`).
Metrics and the other JSON fields are stored with non-finite floats as ``null``
(the column type ``SafeJSON`` in ``store/tables.py``, via :func:`clvdrift.jsonable.plain`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from clvdrift.errors import RegistryError
from clvdrift.store.db import is_transient, session_scope
from clvdrift.store.tables import CHAMPION_INDEX, ModelVersionRow

T = TypeVar("T")

ATTEMPTS = 8
"""How many times a champion change that collides with a concurrent one is tried."""
BACKOFF_SECONDS = 0.02
"""Base of the jittered exponential pause between attempts."""


@dataclass(frozen=True)
class ModelVersion:
    version: str
    created_at: datetime
    target: str
    metrics: dict[str, Any]
    params: dict[str, Any]
    training: dict[str, Any]
    data_fingerprint: dict[str, Any]
    artifacts: dict[str, Any]
    is_champion: bool
    promoted_at: datetime | None
    run_id: str | None = None
    """The monitoring or Airflow run that registered this version; ``None`` for a plain training."""

    @classmethod
    def _from_row(cls, row: ModelVersionRow) -> ModelVersion:
        return cls(**{f: getattr(row, f) for f in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat()
        out["promoted_at"] = self.promoted_at.isoformat() if self.promoted_at else None
        return out


def _champion_conflict(exc: IntegrityError) -> bool:
    """Whether ``exc`` is the one-champion index refusing a second champion (a concurrent change won)."""
    message = str(exc.orig)
    return CHAMPION_INDEX in message or "model_versions.is_champion" in message


def _version_conflict(exc: IntegrityError) -> bool:
    """Whether ``exc`` is the unique version refusing a version a concurrent process just registered."""
    message = str(exc.orig)
    return "model_versions_version_key" in message or "model_versions.version" in message


class ModelRegistry:
    """Reads and writes model versions; every change is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def register(
        self,
        version: str,
        *,
        target: str,
        metrics: dict[str, Any],
        params: dict[str, Any],
        training: dict[str, Any],
        data_fingerprint: dict[str, Any],
        artifacts: dict[str, Any],
        champion: bool | None = None,
        run_id: str | None = None,
    ) -> ModelVersion:
        """Record a new version. ``champion=None`` makes it champion only when there is none yet.

        ``run_id`` names the run that registered it; the database refuses a second version of one run.

        ``champion=True`` demotes the current champion in the same transaction. Under concurrency the
        database decides: with ``None``, the version that commits first is champion and the others are
        registered as challengers.
        """

        def work(session: Session) -> ModelVersion:
            if session.scalar(select(ModelVersionRow.id).where(ModelVersionRow.version == version)):
                raise RegistryError(f"model version {version} is already registered")
            if run_id is not None and (
                done := session.scalar(
                    select(ModelVersionRow.version).where(ModelVersionRow.run_id == run_id)
                )
            ):
                raise RegistryError(f"run {run_id} already registered model version {done}")
            if champion is None:
                crown = session.scalar(select(ModelVersionRow.id).where(ModelVersionRow.is_champion)) is None
            else:
                crown = champion
            now = datetime.now(UTC)
            if champion:
                self._demote_others(session, version)
            row = ModelVersionRow(
                version=version,
                created_at=now,
                target=target,
                metrics=metrics,
                params=params,
                training=training,
                data_fingerprint=data_fingerprint,
                artifacts=artifacts,
                is_champion=crown,
                promoted_at=now if crown else None,
                run_id=run_id,
            )
            session.add(row)
            session.flush()
            session.refresh(row)  # what the store holds (non-finite metrics are null there)
            return ModelVersion._from_row(row)

        return self._write(work, "register", version)

    def promote(self, version: str) -> ModelVersion:
        """Make ``version`` the champion (and no other); a no-op when it already is."""

        def work(session: Session) -> ModelVersion:
            row = session.scalar(select(ModelVersionRow).where(ModelVersionRow.version == version))
            if row is None:
                raise RegistryError(f"unknown model version {version!r}")
            if not row.is_champion:
                self._demote_others(session, version)
                row.is_champion = True
                row.promoted_at = datetime.now(UTC)
                session.flush()
            return ModelVersion._from_row(row)

        return self._write(work, "promote", version)

    def get(self, version: str) -> ModelVersion:
        with session_scope(self.engine) as session:
            row = session.scalar(select(ModelVersionRow).where(ModelVersionRow.version == version))
            if row is None:
                raise RegistryError(f"unknown model version {version!r}")
            return ModelVersion._from_row(row)

    def previous_champion(self) -> ModelVersion | None:
        """The version that was champion before the current one (the most recently promoted version that
        is not the champion now): what a rollback restores."""
        with session_scope(self.engine) as session:
            row = session.scalar(
                select(ModelVersionRow)
                .where(~ModelVersionRow.is_champion, ModelVersionRow.promoted_at.is_not(None))
                .order_by(ModelVersionRow.promoted_at.desc(), ModelVersionRow.id.desc())
                .limit(1)
            )
            return ModelVersion._from_row(row) if row else None

    def of_run(self, run_id: str) -> ModelVersion | None:
        """The version the run ``run_id`` registered, if any."""
        with session_scope(self.engine) as session:
            row = session.scalar(select(ModelVersionRow).where(ModelVersionRow.run_id == run_id))
            return ModelVersion._from_row(row) if row else None

    def champion(self) -> ModelVersion | None:
        with session_scope(self.engine) as session:
            row = session.scalar(select(ModelVersionRow).where(ModelVersionRow.is_champion))
            return ModelVersion._from_row(row) if row else None

    def list_versions(self) -> list[ModelVersion]:
        """All versions, newest first."""
        with session_scope(self.engine) as session:
            rows = session.scalars(select(ModelVersionRow).order_by(ModelVersionRow.id.desc())).all()
            return [ModelVersion._from_row(r) for r in rows]

    @staticmethod
    def _demote_others(session: Session, version: str) -> None:
        session.execute(
            update(ModelVersionRow)
            .where(ModelVersionRow.is_champion, ModelVersionRow.version != version)
            .values(is_champion=False)
        )

    def _write(self, work: Callable[[Session], T], action: str, version: str) -> T:
        """Run ``work`` in one transaction, retried when a concurrent champion change collides with it."""
        what = f"{action} model version {version}"
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with Session(self.engine, expire_on_commit=False) as session, session.begin():
                    return work(session)
            except IntegrityError as exc:
                if _version_conflict(exc):
                    raise RegistryError(f"model version {version} is already registered") from exc
                if not _champion_conflict(exc):
                    raise RegistryError(f"cannot {what}: {str(exc.orig).strip().splitlines()[0]}") from exc
                error: SQLAlchemyError = exc
            except SQLAlchemyError as exc:
                if not is_transient(exc):
                    raise RegistryError(f"cannot {what}: {str(exc).strip().splitlines()[0]}") from exc
                error = exc
            time.sleep(random.uniform(0, BACKOFF_SECONDS * 2**attempt))  # jitter, not security
        raise RegistryError(
            f"cannot {what}: concurrent champion changes kept colliding after {ATTEMPTS} attempts "
            f"({str(error).strip().splitlines()[0]}); try again"
        )
