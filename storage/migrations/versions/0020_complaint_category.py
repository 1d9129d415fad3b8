"""For the monthly report: the dead-letter log, and the complaint category (投诉类别) as a
stored field of the order, so the report and the API count and filter by it without reading
payloads (which hold complainants' data); backfilled from each complaint order's first signal.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from workorder_pipeline.storage.tables import UtcDateTime

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

#: The contract's categories (../shared/contracts.md): anything else in a payload stays NULL.
_CATEGORIES = (
    "refusal",
    "detour",
    "overcharging",
    "illegal_operation",
    "service_attitude",
    "driving_school",
    "vehicle_repair",
    "waterway",
    "enforcement_conduct",
    "other",
)


def upgrade() -> None:
    op.create_table(
        "dead_letter_log",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_dead_letter_log_at", "dead_letter_log", ["at"])
    with op.batch_alter_table("work_order") as table:
        table.add_column(sa.Column("category", sa.String(32), nullable=True))
        table.create_index("ix_work_order_category", ["category"])
        table.create_index("ix_work_order_closed_at", ["closed_at"])
    bind = op.get_bind()
    category = "json_extract(s.payload, '$.category')"
    if bind.dialect.name == "postgresql":
        category = "s.payload->>'category'"
    # The first signal of the order decided it; a merged later one does not change it.
    first = (
        f"SELECT {category} FROM work_order_source s WHERE s.work_order_id = work_order.id "
        "ORDER BY s.received_at, s.source_key LIMIT 1"
    )
    allowed = ", ".join(f"'{name}'" for name in _CATEGORIES)
    op.execute(f"UPDATE work_order SET category = ({first}) WHERE kind = 'complaint'")
    op.execute(f"UPDATE work_order SET category = NULL WHERE category NOT IN ({allowed})")


def downgrade() -> None:
    with op.batch_alter_table("work_order") as table:
        table.drop_index("ix_work_order_closed_at")
        table.drop_index("ix_work_order_category")
        table.drop_column("category")
    op.drop_index("ix_dead_letter_log_at", "dead_letter_log")
    op.drop_table("dead_letter_log")
