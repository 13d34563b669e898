"""One champion, enforced by the database: a partial unique index on ``is_champion WHERE is_champion``.

A store written by the old code may hold several champions (two concurrent ``train --promote``); the
most recently promoted one (then the newest row) stays champion, the others are demoted first.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEX = "uq_model_versions_one_champion"
versions = sa.table(
    "model_versions",
    sa.column("id", sa.Integer),
    sa.column("is_champion", sa.Boolean),
    sa.column("promoted_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    champions = versions.alias("champions")  # an alias: the subquery must not correlate with the UPDATE
    keep = (
        sa.select(champions.c.id)
        .where(champions.c.is_champion)
        .order_by(champions.c.promoted_at.is_(None), champions.c.promoted_at.desc(), champions.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    op.execute(
        versions.update().where(versions.c.is_champion, versions.c.id != keep).values(is_champion=False)
    )
    op.drop_index("ix_model_versions_is_champion", table_name="model_versions")
    op.create_index(
        INDEX,
        "model_versions",
        ["is_champion"],
        unique=True,
        postgresql_where=sa.text("is_champion"),
        sqlite_where=sa.text("is_champion"),
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="model_versions")
    op.create_index("ix_model_versions_is_champion", "model_versions", ["is_champion"])
