"""Open and overdue orders per unit, kind and priority: what the leader's gauges export
(streams/supervision.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from workorder_pipeline.schemas.workorder import WorkOrderStatus
from workorder_pipeline.storage.tables import work_order


class OrderGauges:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def open_order_stats(self, now: datetime) -> list[dict[str, Any]]:
        """Open (not closed) orders by unit, kind and priority: ``open``, ``overdue`` and
        ``oldest_created_at``. Overdue: past due_at and the clock running; a returned order
        waits for the command center to re-route it, its clock stopped (the time is added
        to its due_at when it is re-routed), so it is open but never overdue."""
        c = work_order.c
        open_statuses = [status.value for status in WorkOrderStatus if status is not WorkOrderStatus.closed]
        late = sa.and_(c.due_at < now, c.status != WorkOrderStatus.returned.value)
        query = (
            sa.select(
                c.unit,
                c.kind,
                c.priority,
                sa.func.count().label("open"),
                sa.func.coalesce(sa.func.sum(sa.case((late, 1), else_=0)), 0).label("overdue"),
                sa.func.min(c.created_at).label("oldest_created_at"),
            )
            .where(c.status.in_(open_statuses))
            .group_by(c.unit, c.kind, c.priority)
        )
        with self._engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]
