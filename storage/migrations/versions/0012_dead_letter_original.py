"""Original bytes of masked dead letters (``dead_letter_original``); reads of them recorded.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from workorder_pipeline.storage.tables import UtcDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letter_original",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=True),
        sa.Column("value", sa.LargeBinary(), nullable=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("dead_lettered_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_dead_letter_original_at", "dead_letter_original", ["dead_lettered_at"])
    # A read of a dead letter's original is recorded like a read of an order's complainant.
    with op.batch_alter_table("personal_data_read") as batch:
        batch.alter_column("work_order_id", existing_type=sa.String(40), nullable=True)
        batch.add_column(sa.Column("dead_letter_id", sa.String(40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("personal_data_read") as batch:
        batch.drop_column("dead_letter_id")
    op.execute("DELETE FROM personal_data_read WHERE work_order_id IS NULL")
    with op.batch_alter_table("personal_data_read") as batch:
        batch.alter_column("work_order_id", existing_type=sa.String(40), nullable=False)
    op.drop_index("ix_dead_letter_original_at", "dead_letter_original")
    op.drop_table("dead_letter_original")
