"""Notifications (issue 21): one row per receiver and message, every attempt recorded;
escalations remember when their notifications were planned (those fired before the
upgrade count as planned).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from workorder_pipeline.storage.tables import UtcDateTime

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("escalation") as table:
        table.add_column(sa.Column("notified_at", UtcDateTime(), nullable=True))
        table.create_index("ix_escalation_unnotified", ["notified_at"])
    # Escalations fired before notifications existed are not notified now: an upgrade must
    # not send a backlog of old reminders (about orders long closed).
    op.execute(sa.text("UPDATE escalation SET notified_at = fired_at"))
    op.create_table(
        "notification",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("work_order_id", sa.String(40), sa.ForeignKey("work_order.id"), nullable=False),
        sa.Column("level", sa.String(24), nullable=False),
        sa.Column("deadline", UtcDateTime(), nullable=False),
        sa.Column("receiver", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("send_after", UtcDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("lease_until", UtcDateTime(), nullable=True),
        sa.Column("sent_at", UtcDateTime(), nullable=True),
        sa.Column("failed_at", UtcDateTime(), nullable=True),
        sa.Column("about", sa.String(40), nullable=True),
    )
    op.create_index("ix_notification_due", "notification", ["status", "send_after"])
    op.create_index("ix_notification_order", "notification", ["work_order_id"])
    op.create_table(
        "notification_attempt",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("notification_id", sa.String(40), sa.ForeignKey("notification.id"), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("response_code", sa.String(32), nullable=True),
        sa.Column("detail", sa.String(300), nullable=False, server_default=""),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.UniqueConstraint("notification_id", "attempt", name="uq_notification_attempt"),
    )


def downgrade() -> None:
    op.drop_table("notification_attempt")
    op.drop_index("ix_notification_order", "notification")
    op.drop_index("ix_notification_due", "notification")
    op.drop_table("notification")
    with op.batch_alter_table("escalation") as table:
        table.drop_index("ix_escalation_unnotified")
        table.drop_column("notified_at")
