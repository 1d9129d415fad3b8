"""Extension decisions notified (issue 21): an index of the history rows by type and time,
for the recent approvals and rejections the notifier looks for.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_work_order_event_type_at", "work_order_event", ["type", "at"])


def downgrade() -> None:
    op.drop_index("ix_work_order_event_type_at", table_name="work_order_event")
