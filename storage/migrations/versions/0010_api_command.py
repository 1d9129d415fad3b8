"""Commands the HTTP API sent: ``GET /commands/{id}`` answers 404 for one never seen.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from workorder_pipeline.storage.tables import UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_command",
        sa.Column("command_id", sa.String(128), primary_key=True),
        sa.Column("work_order_id", sa.String(128), nullable=False),
        sa.Column("sent_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("api_command")
