"""The monthly report's windows read through indexes (issue 20): escalations fired in a month
(report_orders.escalated) and orders due in a month (report_orders.overdue) were a scan of every
escalation and every order ever kept; the other windows already had theirs.

Revision ID: 0028
Revises: 0025
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0028"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_escalation_fired_at", "escalation", ["fired_at"])
    op.create_index("ix_work_order_due_at", "work_order", ["due_at"])


def downgrade() -> None:
    op.drop_index("ix_work_order_due_at", table_name="work_order")
    op.drop_index("ix_escalation_fired_at", table_name="escalation")
