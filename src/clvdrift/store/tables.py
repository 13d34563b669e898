"""Tables of the store, as the newest migration leaves them (``store/migrations`` creates them)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Dialect, Index, Integer, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

CHAMPION_INDEX = "uq_model_versions_one_champion"
"""Partial unique index on ``is_champion WHERE is_champion``: the database allows one champion only."""


def json_safe(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, ±inf) replaced by ``None``, recursively.

    JSON has no NaN and PostgreSQL refuses it in JSON columns; numpy scalars become Python scalars.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        return json_safe(value.item())
    return value


class SafeJSON(TypeDecorator[Any]):
    """A JSON column that stores non-finite floats as ``null`` (see :func:`json_safe`)."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return json_safe(value)


class Base(DeclarativeBase):
    pass


class ModelVersionRow(Base):
    """One trained model version; the partial unique index lets at most one row have ``is_champion``."""

    __tablename__ = "model_versions"
    __table_args__ = (
        Index(
            CHAMPION_INDEX,
            "is_champion",
            unique=True,
            postgresql_where=text("is_champion"),
            sqlite_where=text("is_champion"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    version: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    target: Mapped[str] = mapped_column(String(32), nullable=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(SafeJSON, nullable=False)
    params: Mapped[dict[str, Any]] = mapped_column(SafeJSON, nullable=False)
    training: Mapped[dict[str, Any]] = mapped_column(SafeJSON, nullable=False)
    data_fingerprint: Mapped[dict[str, Any]] = mapped_column(SafeJSON, nullable=False)
    artifacts: Mapped[dict[str, Any]] = mapped_column(SafeJSON, nullable=False)
    is_champion: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    promoted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
