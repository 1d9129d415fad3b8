"""Units that get a copy of an order (routes with ``continue``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("work_order") as table:
        table.add_column(sa.Column("copied_to", sa.String(512), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("work_order") as table:
        table.drop_column("copied_to")
