"""Officers' accounts and console sessions (issue 19: the web console).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from workorder_pipeline.storage.tables import UtcDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "officer",
        sa.Column("certificate_no", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("unit", sa.String(128), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_officer_unit", "officer", ["unit"])
    op.create_table(
        "console_session",
        sa.Column("token_sha256", sa.String(64), primary_key=True),
        sa.Column("certificate_no", sa.String(64), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("last_seen_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_console_session_officer", "console_session", ["certificate_no"])


def downgrade() -> None:
    op.drop_index("ix_console_session_officer", "console_session")
    op.drop_table("console_session")
    op.drop_index("ix_officer_unit", "officer")
    op.drop_table("officer")
