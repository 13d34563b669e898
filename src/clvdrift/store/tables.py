"""Tables of the store, as the newest migration leaves them (``store/migrations`` creates them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Dialect, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from clvdrift.jsonable import plain

CHAMPION_INDEX = "uq_model_versions_one_champion"
"""Partial unique index on ``is_champion WHERE is_champion``: the database allows one champion only."""
RUN_INDEX = "uq_model_versions_run_id"
"""Unique index on ``run_id``: a run registers one version at most (NULL, a plain training, repeats)."""


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
        Index(RUN_INDEX, "run_id", unique=True),
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
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rolled_back_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    """When a rollback took this version off (cleared when it is promoted again)."""


class HistoryBatchRow(Base):
    """One batch of transactions added to the history: its Parquet part and what it brought."""

    __tablename__ = "history_batches"
    __table_args__ = (Index("ix_history_batches_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    source: Mapped[str] = mapped_column(String(1024), nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    mode: Mapped[str] = mapped_column(String(16), nullable=False)
    part_file: Mapped[str] = mapped_column(String(512), nullable=False)
    rows_in: Mapped[int] = mapped_column(Integer, nullable=False)
    rows_added: Mapped[int] = mapped_column(Integer, nullable=False)
    first_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    part_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """sha256 of the part file (``NULL`` for parts written before it was recorded)."""


class ProcessedFileRow(Base):
    """The ledger: one row per input file content (sha256) the loop has processed or quarantined."""

    __tablename__ = "processed_files"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    checked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The run that finished a check of the history holding this file; ``NULL``: to be checked."""


class RunRow(Base):
    """One run of the monitoring loop: the source of truth of the loop's metrics."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_started_at", "started_at"), Index("ix_runs_status", "status"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    trigger: Mapped[str] = mapped_column(String(16), nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    inputs: Mapped[Any] = mapped_column(SafeJSON, nullable=False)
    champion_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    data_drift: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    model_drift: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    decision: Mapped[str | None] = mapped_column(String(32), nullable=True)
    challenger: Mapped[dict[str, Any] | None] = mapped_column(SafeJSON, nullable=True)
    durations: Mapped[dict[str, Any]] = mapped_column(SafeJSON, nullable=False, default=dict)
    details: Mapped[dict[str, Any]] = mapped_column(SafeJSON, nullable=False, default=dict)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, server_default="monitor")
    """``monitor`` (a monitoring cycle), ``promote`` or ``rollback`` (a champion change by hand)."""
    host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pid_started: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """The owner process's start time (``/proc/<pid>/stat``), so a recycled PID is not the owner."""
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApiKeyRow(Base):
    """One API key of the service: only the sha256 of its secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    secret_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class IngestRequestRow(Base):
    """One ingestion request: what it brought and its response (a retry with its ``Idempotency-Key``
    gets this response again)."""

    __tablename__ = "ingest_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    request_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    accepted: Mapped[int] = mapped_column(Integer, nullable=False)
    rejected: Mapped[int] = mapped_column(Integer, nullable=False)
    rows_added: Mapped[int] = mapped_column(Integer, nullable=False)
    batch_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reasons: Mapped[dict[str, Any]] = mapped_column(SafeJSON, nullable=False)
    """Rejected rows counted by reason."""
    response: Mapped[dict[str, Any]] = mapped_column(SafeJSON, nullable=False)


class DriftEventRow(Base):
    """One online drift check (``POST /drift`` or the worker)."""

    __tablename__ = "drift_events"
    __table_args__ = (Index("ix_drift_events_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False)
    model_version: Mapped[str] = mapped_column(String(64), nullable=False)
    rows: Mapped[int] = mapped_column(Integer, nullable=False)
    severity: Mapped[str] = mapped_column(String(16), nullable=False)
    result: Mapped[dict[str, Any]] = mapped_column(SafeJSON, nullable=False)


class PredictionBatchRow(Base):
    """One batch of logged predictions (a Parquet part of features and predictions)."""

    __tablename__ = "prediction_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    model_version: Mapped[str] = mapped_column(String(64), nullable=False)
    rows: Mapped[int] = mapped_column(Integer, nullable=False)
    part_file: Mapped[str] = mapped_column(String(512), nullable=False)
    part_sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    checked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The drift event that checked this batch; ``NULL``: to be checked."""


class RetrainJobRow(Base):
    """One retrain job of the worker's queue: ``queued`` → ``running`` → ``done`` | ``failed``."""

    __tablename__ = "retrain_jobs"
    __table_args__ = (Index("ix_retrain_jobs_status", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    requested_by: Mapped[str] = mapped_column(String(64), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    owner: Mapped[str | None] = mapped_column(String(300), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(SafeJSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
