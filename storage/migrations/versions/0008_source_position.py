"""Where each order's source message was read: ``work_order_source.position``.

``topic/partition/offset`` of the message a publisher id was first recorded from. In
exactly-once mode it tells a re-delivered message (same position: its batch's outputs
never committed, so its order is published again) from a publisher's re-send (another
position: nothing to publish). NULL for rows stored before this revision.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("work_order_source") as table:
        table.add_column(sa.Column("position", sa.String(300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("work_order_source") as table:
        table.drop_column("position")
