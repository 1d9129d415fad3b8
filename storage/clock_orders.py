"""Orders the workflow's clocks may have something to fire for (processors/clocks.py and
processors/cards.py): the database narrows them, the pure rules decide exactly."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from schemas.workorder import WorkOrderStatus
from storage.tables import work_order

_RUNNING = [
    WorkOrderStatus.dispatched.value,
    WorkOrderStatus.accepted.value,
    WorkOrderStatus.in_progress.value,
    WorkOrderStatus.feedback_submitted.value,
]


def orders_on_the_clock(
    engine: Engine, due_by: datetime, accept_by: datetime, chunk: int = 5000
) -> Iterator[list[RowMapping]]:
    """id, unit, status, priority, due_at, accept_due_at and returned_at, ``chunk`` at a time (by id),
    of running orders due by ``due_by`` (the cards' horizon), dispatched orders to accept by
    ``accept_by`` and every returned order (the command center's clock)."""
    c = work_order.c
    clauses = [
        sa.and_(c.status.in_(_RUNNING), c.due_at <= due_by),
        sa.and_(c.status == WorkOrderStatus.dispatched.value, c.accept_due_at <= accept_by),
        c.status == WorkOrderStatus.returned.value,
    ]
    candidates = sa.or_(*clauses)
    after = ""
    while True:
        with engine.connect() as conn:
            rows = list(
                conn.execute(
                    sa.select(c.id, c.unit, c.status, c.priority, c.due_at, c.accept_due_at, c.returned_at)
                    .where(candidates, c.id > after)
                    .order_by(c.id)
                    .limit(chunk)
                ).mappings()
            )
        if not rows:
            return
        yield rows
        after = rows[-1]["id"]
