"""Which recipients of a notification have it (an SMS receiver's phones): a retry after a
failure for one phone sent to every phone again, so those that had it got it twice. Each
phone the gateway took is recorded before the next is sent; a retry, or another worker
after a restart, sends only to the others.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from workorder_pipeline.storage.tables import UtcDateTime

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_recipient",
        sa.Column("notification_id", sa.String(40), sa.ForeignKey("notification.id"), primary_key=True),
        sa.Column("recipient", sa.String(64), primary_key=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("delivered_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("notification_recipient")
