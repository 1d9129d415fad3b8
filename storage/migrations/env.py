"""Alembic environment: run by ``storage.database.migrate`` on the connection it holds."""

from __future__ import annotations

from alembic import context

from workorder_pipeline.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through storage.database.migrate (wo migrate)")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
connection.commit()
