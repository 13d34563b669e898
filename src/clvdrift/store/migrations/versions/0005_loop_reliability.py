"""Loop reliability: who runs a run, which files a finished run checked, part checksums, rollbacks.

- ``runs.kind`` (``monitor`` for a monitoring cycle, ``promote``/``rollback`` for a champion change made
  by hand; existing rows: ``rollback`` when their decision says so, else ``monitor``), and the owner of
  a running row (``host``, ``pid``, ``pid_started``: the process start time, so a recycled PID is not
  taken for the owner) with ``heartbeat_at``, the lease an owner on another host renews.
- ``processed_files.checked_by``: the run that finished a check of the history holding the file. A
  processed file with none is checked again by the next cycle. Existing rows taken in by a ``success``
  run are marked checked by it; the others (their run failed or was killed) are checked again.
- ``history_batches.part_sha256``: the sha256 of the batch's Parquet part (``NULL`` for parts written
  before: those are checked by reading them).
- ``model_versions.rolled_back_at``: when a rollback took the version off (a later promotion clears it),
  so rollbacks walk back the promotion history instead of toggling.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="monitor"))
        batch.add_column(sa.Column("host", sa.String(255), nullable=True))
        batch.add_column(sa.Column("pid", sa.Integer, nullable=True))
        batch.add_column(sa.Column("pid_started", sa.String(32), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE runs SET kind = 'rollback' WHERE decision = 'rollback'")
    with op.batch_alter_table("processed_files") as batch:
        batch.add_column(sa.Column("checked_by", sa.String(64), nullable=True))
    op.execute(
        "UPDATE processed_files SET checked_by = run_id WHERE status = 'processed' AND run_id IN "
        "(SELECT run_id FROM runs WHERE status = 'success')"
    )
    with op.batch_alter_table("history_batches") as batch:
        batch.add_column(sa.Column("part_sha256", sa.String(64), nullable=True))
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("rolled_back_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("rolled_back_at")
    with op.batch_alter_table("history_batches") as batch:
        batch.drop_column("part_sha256")
    with op.batch_alter_table("processed_files") as batch:
        batch.drop_column("checked_by")
    with op.batch_alter_table("runs") as batch:
        for name in ("heartbeat_at", "pid_started", "pid", "host", "kind"):
            batch.drop_column(name)
