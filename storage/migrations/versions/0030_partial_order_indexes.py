"""Three indexes of work_order hold only the orders their queries look for (issue 22): the
provisional deadlines (read when a worker starts), the complaints' categories and the closing
times. Every new order and every dispatched mark (a new row version: its status changes)
wrote an entry in each of them for every order, NULL or false as they mostly are; now only
the rows that match do. The readers' conditions imply the predicates (``category = :x``,
``closed_at >= :t`` are not NULL; ``deadline_provisional IS true`` is the predicate itself,
as SQLAlchemy renders it for each database).

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None

_PROVISIONAL = sa.column("deadline_provisional", sa.Boolean()).is_(True)
_PARTIAL = (
    ("ix_work_order_deadline_provisional", "deadline_provisional", _PROVISIONAL),
    ("ix_work_order_category", "category", sa.text("category IS NOT NULL")),
    ("ix_work_order_closed_at", "closed_at", sa.text("closed_at IS NOT NULL")),
)


def upgrade() -> None:
    for name, column, where in _PARTIAL:
        op.drop_index(name, table_name="work_order")
        op.create_index(name, "work_order", [column], postgresql_where=where, sqlite_where=where)


def downgrade() -> None:
    for name, column, _ in _PARTIAL:
        op.drop_index(name, table_name="work_order")
        op.create_index(name, "work_order", [column])
