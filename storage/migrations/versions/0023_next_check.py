"""Cost flat as the orders pile up (issue 22): the escalation tick finds what is due through
``work_order.next_check_at`` (processors/next_check.py) and its partial index, instead of
reading every running order at every check.

Every open order is due a check at once (its created_at): the first tick sets each one's
next check. Closed orders keep NULL and stay out of the index.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from workorder_pipeline.storage.tables import UtcDateTime

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

_NOT_NULL = sa.text("next_check_at IS NOT NULL")


def upgrade() -> None:
    op.add_column("work_order", sa.Column("next_check_at", UtcDateTime(), nullable=True))
    op.execute("UPDATE work_order SET next_check_at = created_at WHERE status <> 'closed'")
    op.create_index(
        "ix_work_order_next_check",
        "work_order",
        ["next_check_at"],
        postgresql_where=_NOT_NULL,
        sqlite_where=_NOT_NULL,
    )


def downgrade() -> None:
    op.drop_index("ix_work_order_next_check", "work_order")
    # Not batch mode: SQLite (3.35+) drops a column in place (see 0007).
    op.drop_column("work_order", "next_check_at")
