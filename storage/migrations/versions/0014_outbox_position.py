"""Where the command an outbox row announces was read: ``outbox.position``.

``topic/partition/offset`` of the command message, written in exactly-once mode only. A
command that comes again from a position the outbox already holds is one whose outputs
never committed to Kafka (they commit with its offset): its rows are published again and
the command is not handled again. NULL for rows written before this revision, by
at-least-once workers, and for announcements not made by a command from Kafka.

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as table:
        table.add_column(sa.Column("position", sa.String(300), nullable=True))
    op.create_index("ix_outbox_position", "outbox", ["position"])


def downgrade() -> None:
    op.drop_index("ix_outbox_position", table_name="outbox")
    with op.batch_alter_table("outbox") as table:
        table.drop_column("position")
