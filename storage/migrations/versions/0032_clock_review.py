"""The rules the stored next checks were computed by (issue 22): the first escalation tick of
each worker process looked at every open order, in case the policy or the calendar had
changed (36 s at 50,000 open orders). It now does so only when the digest of the clock rules
differs from the one recorded by the last complete review (services/escalations.py).

Revision ID: 0032
Revises: 0030
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from workorder_pipeline.storage.tables import UtcDateTime

revision = "0032"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "clock_review",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("digest", sa.String(64), nullable=True),
        sa.Column("reviewed_at", UtcDateTime(), nullable=True),
    )
    # The one row; no digest yet: the next process reviews every open order once.
    op.bulk_insert(table, [{"id": 1, "digest": None, "reviewed_at": None}])


def downgrade() -> None:
    op.drop_table("clock_review")
