"""Pending extension requests listed across orders (issue 18): a partial index of the
orders with a request waiting, by unit and due_at.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_PENDING = sa.text("extension_requested_at IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_work_order_pending_extension",
        "work_order",
        ["unit", "due_at"],
        sqlite_where=_PENDING,
        postgresql_where=_PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_work_order_pending_extension", table_name="work_order")
