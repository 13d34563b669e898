"""Tables of the store, as the newest migration leaves them (``store/migrations`` creates them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Dialect, Index, Integer, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from clvdrift.jsonable import plain

CHAMPION_INDEX = "uq_model_versions_one_champion"
"""Partial unique index on ``is_champion WHERE is_champion``: the database allows one champion only."""


class SafeJSON(TypeDecorator[Any]):
    """A JSON column that stores non-finite floats as ``null``, through the project's one JSON convention.

    PostgreSQL refuses NaN in JSON columns and JSON has no NaN: every value bound to such a column goes
    through :func:`clvdrift.jsonable.plain` (NaN and ±inf become ``None``, numpy scalars Python ones).
    """

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return plain(value)


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
