"""Lifecycle: deadlines in working days, the order's clocks, processed commands, escalations.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from workorder_pipeline.storage.tables import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("work_order") as table:
        table.add_column(
            sa.Column("deadline_provisional", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        table.add_column(sa.Column("working_days", sa.Integer(), nullable=True))
        table.add_column(sa.Column("accepted_at", UtcDateTime(), nullable=True))
        table.add_column(sa.Column("first_feedback_at", UtcDateTime(), nullable=True))
        table.add_column(sa.Column("closed_at", UtcDateTime(), nullable=True))
        table.add_column(sa.Column("disposition", sa.String(32), nullable=True))
        table.add_column(sa.Column("closed_on_time", sa.Boolean(), nullable=True))
        table.add_column(sa.Column("reopen_count", sa.Integer(), nullable=False, server_default="0"))
        table.add_column(sa.Column("returned_at", UtcDateTime(), nullable=True))
        table.add_column(sa.Column("returned_seconds", sa.Float(), nullable=False, server_default="0"))
    op.create_index("ix_work_order_deadline_provisional", "work_order", ["deadline_provisional"])

    op.create_table(
        "processed_command",
        sa.Column("command_id", sa.String(128), primary_key=True),
        sa.Column("work_order_id", sa.String(40), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
    )

    op.create_table(
        "escalation",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("work_order_id", sa.String(40), sa.ForeignKey("work_order.id"), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=False),
        sa.Column("unit", sa.String(64), nullable=False),
        sa.Column("fired_at", UtcDateTime(), nullable=False),
        sa.Column("published_at", UtcDateTime(), nullable=True),
        sa.UniqueConstraint("work_order_id", "level", "due_at", name="uq_escalation_once"),
    )
    op.create_index("ix_escalation_unpublished", "escalation", ["published_at"])


def downgrade() -> None:
    op.drop_table("escalation")
    op.drop_table("processed_command")
    op.drop_index("ix_work_order_deadline_provisional", "work_order")
    with op.batch_alter_table("work_order") as table:
        for column in (
            "returned_seconds", "returned_at", "reopen_count", "closed_on_time", "disposition",
            "closed_at", "first_feedback_at", "accepted_at", "working_days", "deadline_provisional",
        ):  # fmt: skip
            table.drop_column(column)
