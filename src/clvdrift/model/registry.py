"""Model registry in the store: every version with its metrics, and which one is the champion."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select, update

from clvdrift.errors import RegistryError
from clvdrift.store.db import session_scope
from clvdrift.store.tables import ModelVersionRow


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

    @classmethod
    def _from_row(cls, row: ModelVersionRow) -> ModelVersion:
        return cls(**{f: getattr(row, f) for f in cls.__dataclass_fields__})

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["created_at"] = self.created_at.isoformat()
        out["promoted_at"] = self.promoted_at.isoformat() if self.promoted_at else None
        return out


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
    ) -> ModelVersion:
        """Record a new version. ``champion=None`` makes it champion only when there is none yet."""
        now = datetime.now(UTC)
        with session_scope(self.engine) as session:
            if session.scalar(select(ModelVersionRow.id).where(ModelVersionRow.version == version)):
                raise RegistryError(f"model version {version} is already registered")
            has_champion = session.scalar(select(ModelVersionRow.id).where(ModelVersionRow.is_champion)) is not None
            make_champion = (not has_champion) if champion is None else champion
            if make_champion:
                session.execute(update(ModelVersionRow).where(ModelVersionRow.is_champion).values(is_champion=False))
            row = ModelVersionRow(
                version=version, created_at=now, target=target, metrics=metrics, params=params,
                training=training, data_fingerprint=data_fingerprint, artifacts=artifacts,
                is_champion=make_champion, promoted_at=now if make_champion else None,
            )
            session.add(row)
            session.flush()
            return ModelVersion._from_row(row)

    def promote(self, version: str) -> ModelVersion:
        """Make ``version`` the champion (and no other)."""
        with session_scope(self.engine) as session:
            row = session.scalar(select(ModelVersionRow).where(ModelVersionRow.version == version))
            if row is None:
                raise RegistryError(f"unknown model version {version!r}")
            session.execute(update(ModelVersionRow).where(ModelVersionRow.is_champion).values(is_champion=False))
            row.is_champion = True
            row.promoted_at = datetime.now(UTC)
            session.flush()
            return ModelVersion._from_row(row)

    def get(self, version: str) -> ModelVersion:
        with session_scope(self.engine) as session:
            row = session.scalar(select(ModelVersionRow).where(ModelVersionRow.version == version))
            if row is None:
                raise RegistryError(f"unknown model version {version!r}")
            return ModelVersion._from_row(row)

    def champion(self) -> ModelVersion | None:
        with session_scope(self.engine) as session:
            row = session.scalar(select(ModelVersionRow).where(ModelVersionRow.is_champion))
            return ModelVersion._from_row(row) if row else None

    def list_versions(self) -> list[ModelVersion]:
        """All versions, newest first."""
        with session_scope(self.engine) as session:
            rows = session.scalars(select(ModelVersionRow).order_by(ModelVersionRow.id.desc())).all()
            return [ModelVersion._from_row(r) for r in rows]
