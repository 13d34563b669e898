"""The monitoring loop's tables: ``history_batches``, the ``processed_files`` ledger and the ``runs`` history.

Only new tables: stores at 0002 keep their ``model_versions`` rows untouched.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "history_batches",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.String(64), nullable=False, unique=True),
        sa.Column("source", sa.String(1024), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("part_file", sa.String(512), nullable=False),
        sa.Column("rows_in", sa.Integer, nullable=False),
        sa.Column("rows_added", sa.Integer, nullable=False),
        sa.Column("first_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_history_batches_created_at", "history_batches", ["created_at"])
    op.create_table(
        "processed_files",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False, unique=True),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("champion_version", sa.String(64), nullable=True),
        sa.Column("data_drift", sa.Boolean, nullable=True),
        sa.Column("model_drift", sa.Boolean, nullable=True),
        sa.Column("decision", sa.String(32), nullable=True),
        sa.Column("challenger", sa.JSON, nullable=True),
        sa.Column("durations", sa.JSON, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
    )
    op.create_index("ix_runs_started_at", "runs", ["started_at"])
    op.create_index("ix_runs_status", "runs", ["status"])


def downgrade() -> None:
    op.drop_table("runs")
    op.drop_table("processed_files")
    op.drop_table("history_batches")
