"""Triage: dedupe keys, suggested dispositions, links between orders, suppressed signals.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from workorder_pipeline.storage.tables import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("work_order") as table:
        table.add_column(sa.Column("dedupe_key", sa.String(300), nullable=True))
        table.add_column(sa.Column("suggested_disposition", sa.String(32), nullable=True))
        table.add_column(sa.Column("violation_key", sa.String(300), nullable=True))
    op.create_index("ix_work_order_dedupe_key", "work_order", ["dedupe_key", "last_seen_at"])
    op.create_index("ix_work_order_violation_key", "work_order", ["violation_key"])

    op.create_table(
        "work_order_link",
        sa.Column("work_order_id", sa.String(40), sa.ForeignKey("work_order.id"), primary_key=True),
        sa.Column("related_id", sa.String(40), sa.ForeignKey("work_order.id"), primary_key=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_work_order_link_related_id", "work_order_link", ["related_id"])

    op.create_table(
        "suppressed_signal",
        sa.Column("source_key", sa.String(300), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("rule_key", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("unit", sa.String(64), nullable=False),
        sa.Column("route_key", sa.String(64), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("violation_key", sa.String(300), nullable=True),
        sa.Column("payload", _json, nullable=False),
    )
    op.create_index("ix_suppressed_signal_received_at", "suppressed_signal", ["received_at"])
    op.create_index("ix_suppressed_signal_violation_key", "suppressed_signal", ["violation_key"])
    op.create_index("ix_work_order_source_received_at", "work_order_source", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_work_order_source_received_at", "work_order_source")
    op.drop_table("suppressed_signal")
    op.drop_table("work_order_link")
    op.drop_index("ix_work_order_violation_key", "work_order")
    op.drop_index("ix_work_order_dedupe_key", "work_order")
    with op.batch_alter_table("work_order") as table:
        table.drop_column("violation_key")
        table.drop_column("suggested_disposition")
        table.drop_column("dedupe_key")
