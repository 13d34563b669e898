"""The online side's tables (``clvdrift serve`` and ``clvdrift worker``).

- ``api_keys``: one row per API key; only the sha256 of its secret is stored, ``revoked_at`` revokes it.
- ``ingest_requests``: every ingestion request (rows accepted, rejected by reason, added) and its
  response; one sent with an ``Idempotency-Key`` is answered again from here on a retry.
- ``drift_events``: every online drift check (``POST /drift`` and the worker's checks).
- ``prediction_batches``: the logged predictions, written in batches as Parquet parts; the worker checks
  the unchecked ones.
- ``retrain_jobs``: the retrain queue the worker takes jobs from (``FOR UPDATE SKIP LOCKED`` on
  PostgreSQL).

Only new tables: rows of earlier revisions are untouched.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key_id", sa.String(32), nullable=False, unique=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "ingest_requests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False, unique=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True, unique=True),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted", sa.Integer, nullable=False),
        sa.Column("rejected", sa.Integer, nullable=False),
        sa.Column("rows_added", sa.Integer, nullable=False),
        sa.Column("batch_id", sa.String(64), nullable=True),
        sa.Column("reasons", sa.JSON, nullable=False),
        sa.Column("response", sa.JSON, nullable=False),
    )
    op.create_table(
        "drift_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
    )
    op.create_index("ix_drift_events_created_at", "drift_events", ["created_at"])
    op.create_table(
        "prediction_batches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("part_file", sa.String(512), nullable=False),
        sa.Column("part_sha256", sa.String(64), nullable=False),
        sa.Column("checked_by", sa.String(64), nullable=True),
    )
    op.create_table(
        "retrain_jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("owner", sa.String(300), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_retrain_jobs_status", "retrain_jobs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_retrain_jobs_status", "retrain_jobs")
    op.drop_table("retrain_jobs")
    op.drop_table("prediction_batches")
    op.drop_index("ix_drift_events_created_at", "drift_events")
    op.drop_table("drift_events")
    op.drop_table("ingest_requests")
    op.drop_table("api_keys")
