"""The newest event time heard from each publishing platform (``platform_seen``): platform
silence is judged on the database, not on a worker's memory, so it survives restarts.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from workorder_pipeline.storage.tables import UtcDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "platform_seen",
        sa.Column("platform", sa.String(64), primary_key=True),
        sa.Column("last_event_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("platform_seen")
