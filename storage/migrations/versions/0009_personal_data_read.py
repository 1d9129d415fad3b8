"""Reads of complainants' personal data, recorded: ``personal_data_read``.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from workorder_pipeline.storage.tables import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "personal_data_read",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("reader", sa.String(200), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("unit", sa.String(64), nullable=True),
        sa.Column("work_order_id", sa.String(40), nullable=False),
        sa.Column("route", sa.String(200), nullable=False),
    )
    op.create_index("ix_personal_data_read_at", "personal_data_read", ["at"])
    op.create_index("ix_personal_data_read_order", "personal_data_read", ["work_order_id"])


def downgrade() -> None:
    op.drop_table("personal_data_read")
