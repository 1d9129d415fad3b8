"""An index on work_order.created_at: the leader reads the orders created this month and
last month (the figures' cohorts, storage/figures_read.py) every minute.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_work_order_created_at", "work_order", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_work_order_created_at", table_name="work_order")
