"""processed_command.outcome holds refusal codes longer than 16 characters (callback_incomplete).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("processed_command") as table:
        table.alter_column(
            "outcome", type_=sa.String(64), existing_type=sa.String(16), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("processed_command") as table:
        table.alter_column(
            "outcome", type_=sa.String(16), existing_type=sa.String(64), existing_nullable=False
        )
