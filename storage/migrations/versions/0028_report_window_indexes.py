"""The monthly report's windows read through indexes (issue 20): escalations fired in a month
(report_orders.escalated) were a scan of every escalation ever kept; the other windows already
had theirs. Orders due in a month (report_orders.overdue) keep their scan (0.1 s at 200,000
orders): an index on work_order.due_at made SQLite walk every order by it for the command
center's list of pending extension requests instead of that list's partial index.

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


def downgrade() -> None:
    op.drop_index("ix_escalation_fired_at", table_name="escalation")
