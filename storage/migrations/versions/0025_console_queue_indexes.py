"""The command center's queues read through partial indexes (issue 19): each queue is the
newest 50 of few orders, which without them is a scan of every order (pending extension
requests) or a walk back through every order created (complaints awaiting a callback and
overdue orders, when few of the newest are such).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

# The predicates exactly as storage/orders_read.list_orders writes them (and storage/tables.py).
_QUEUES = {
    "ix_work_order_extension_asked_created": sa.text(
        "pending_extension_days IS NOT NULL OR pending_extension_hours IS NOT NULL"
    ),
    "ix_work_order_awaiting_callback_created": sa.text(
        "kind = 'complaint' AND status = 'feedback_submitted'"
    ),
    "ix_work_order_running_created": sa.text("status NOT IN ('closed', 'returned')"),
}


def upgrade() -> None:
    for name, where in _QUEUES.items():
        op.create_index(name, "work_order", ["created_at"], sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    for name in _QUEUES:
        op.drop_index(name, table_name="work_order")
