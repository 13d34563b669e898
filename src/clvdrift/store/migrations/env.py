"""Alembic env: migrations run on the connection :func:`clvdrift.store.db.connect` passes in, in its
transaction (``config.attributes["connection"]``); there is no offline mode."""

from __future__ import annotations

from alembic import context

from clvdrift.store.tables import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection, target_metadata=Base.metadata, render_as_batch=connection.dialect.name == "sqlite"
)
with context.begin_transaction():
    context.run_migrations()
