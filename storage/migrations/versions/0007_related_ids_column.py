"""An order's correlated orders in a column of the order, not one row per link.

Links were 60% of the rows an intake batch wrote (7 per new order in the benchmark) and
are only ever read with their order. ``work_order.related_ids``: ids, sorted,
comma-separated (as ``copied_to``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_work_order = sa.table("work_order", sa.column("id", sa.String), sa.column("related_ids", sa.Text))
_link = sa.table(
    "work_order_link",
    sa.column("work_order_id", sa.String),
    sa.column("related_id", sa.String),
    sa.column("created_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    with op.batch_alter_table("work_order") as table:
        table.add_column(sa.Column("related_ids", sa.Text(), nullable=False, server_default=""))
    conn = op.get_bind()
    related: dict[str, list[str]] = {}
    for order_id, related_id in conn.execute(sa.select(_link.c.work_order_id, _link.c.related_id)):
        related.setdefault(order_id, []).append(related_id)
    if related:
        conn.execute(
            _work_order.update().where(_work_order.c.id == sa.bindparam("order_id")),
            [{"order_id": k, "related_ids": ",".join(sorted(v))} for k, v in related.items()],
        )
    op.drop_index("ix_work_order_link_related_id", "work_order_link")
    op.drop_table("work_order_link")


def downgrade() -> None:
    op.create_table(
        "work_order_link",
        sa.Column("work_order_id", sa.String(40), sa.ForeignKey("work_order.id"), primary_key=True),
        sa.Column("related_id", sa.String(40), sa.ForeignKey("work_order.id"), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_work_order_link_related_id", "work_order_link", ["related_id"])
    conn = op.get_bind()
    now = datetime.now(UTC)
    rows = [
        {"work_order_id": order_id, "related_id": related_id, "created_at": now}
        for order_id, ids in conn.execute(sa.select(_work_order.c.id, _work_order.c.related_ids))
        for related_id in ids.split(",")
        if related_id
    ]
    if rows:
        conn.execute(_link.insert(), rows)
    # Not batch mode: SQLite (3.35+) drops a column in place, where batch mode would
    # re-create work_order, which the foreign keys of the other tables forbid.
    op.drop_column("work_order", "related_ids")
