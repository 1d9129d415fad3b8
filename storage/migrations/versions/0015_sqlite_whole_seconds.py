"""SQLite: times the batch writer stored on a whole second without ``.000000`` get it.

SQLite compares these columns as text, so ``2026-11-22 01:31:00`` sorted below a query's
``2026-11-22 01:31:00.000000`` and a range starting on that second missed the row. The writer
is fixed; this normalizes what it wrote before. PostgreSQL stores real timestamps: nothing to do.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

#: "YYYY-MM-DD HH:MM:SS" is 19 characters; with microseconds, 26.
_WHOLE_SECOND = 19


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    inspector = sa.inspect(bind)
    for table in inspector.get_table_names():
        for column in inspector.get_columns(table):
            if isinstance(column["type"], sa.DateTime):
                name = f'"{column["name"]}"'
                op.execute(
                    f"UPDATE \"{table}\" SET {name} = {name} || '.000000' "
                    f"WHERE length({name}) = {_WHOLE_SECOND}"
                )


def downgrade() -> None:
    """Nothing to undo: both spellings are the same time."""
