"""The 12345-grade workflow (issue 18): the acceptance deadline (签收时限), reworks (重办)
counted, extension requests (延期申请) pending and granted.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from workorder_pipeline.storage.tables import UtcDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_COLUMNS = (
    "accept_due_at",
    "rework_count",
    "extension_requests",
    "pending_extension_days",
    "pending_extension_hours",
    "extension_requested_at",
    "extended_working_days",
    "extended_hours",
)


def upgrade() -> None:
    with op.batch_alter_table("work_order") as table:
        table.add_column(sa.Column("accept_due_at", UtcDateTime(), nullable=True))
        table.add_column(sa.Column("rework_count", sa.Integer(), nullable=False, server_default="0"))
        table.add_column(sa.Column("extension_requests", sa.Integer(), nullable=False, server_default="0"))
        table.add_column(sa.Column("pending_extension_days", sa.Integer(), nullable=True))
        table.add_column(sa.Column("pending_extension_hours", sa.Float(), nullable=True))
        table.add_column(sa.Column("extension_requested_at", UtcDateTime(), nullable=True))
        table.add_column(sa.Column("extended_working_days", sa.Integer(), nullable=False, server_default="0"))
        table.add_column(sa.Column("extended_hours", sa.Float(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("work_order") as table:
        for column in reversed(_COLUMNS):
            table.drop_column(column)
