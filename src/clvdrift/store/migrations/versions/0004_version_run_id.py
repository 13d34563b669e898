"""``model_versions.run_id``: the monitoring or Airflow run that registered a version (``NULL`` for a
plain ``clvdrift train``), unique so that a retried task cannot register a second version for its run.

Existing rows keep their values and get ``NULL``.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEX = "uq_model_versions_run_id"


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("run_id", sa.String(64), nullable=True))
    op.create_index(INDEX, "model_versions", ["run_id"], unique=True)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="model_versions")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("run_id")
