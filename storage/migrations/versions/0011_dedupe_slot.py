"""One absorbing order per dedupe key, enforced by a unique index (storage/dedupe_slots.py).

Each key's most recently seen open order (the one triage merges into) takes the slot.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Ties on last_seen_at: the newest, then the greatest id (any one will do; exactly one).
_BACKFILL = sa.text(
    "UPDATE work_order SET dedupe_slot = dedupe_key WHERE id IN ("
    " SELECT id FROM ("
    "  SELECT id, ROW_NUMBER() OVER ("
    "   PARTITION BY dedupe_key ORDER BY last_seen_at DESC, created_at DESC, id DESC"
    "  ) AS newest"
    "  FROM work_order WHERE dedupe_key IS NOT NULL AND status <> 'closed'"
    " ) AS ranked WHERE newest = 1"
    ")"
)


def upgrade() -> None:
    op.add_column("work_order", sa.Column("dedupe_slot", sa.String(300), nullable=True))
    op.execute(_BACKFILL)
    op.create_index("uq_work_order_dedupe_slot", "work_order", ["dedupe_slot"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_work_order_dedupe_slot", "work_order")
    # Not batch mode: SQLite (3.35+) drops a column in place (see 0007).
    op.drop_column("work_order", "dedupe_slot")
