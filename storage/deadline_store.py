"""Orders' deadlines changed after registration (a provisional one settled by a calendar)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from workorder_pipeline.schemas.workorder import PipelineEventName, WorkOrder, WorkOrderStatus
from workorder_pipeline.storage import audit_trail
from workorder_pipeline.storage.order_rows import with_sources
from workorder_pipeline.storage.tables import work_order


class DeadlineStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def open_with_provisional_deadline(self) -> list[WorkOrder]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(work_order).where(
                    work_order.c.deadline_provisional.is_(True),
                    work_order.c.status != WorkOrderStatus.closed.value,
                )
            ).mappings()
            return with_sources(conn, list(rows))

    def set_deadline(
        self, order_id: str, due_at: datetime, provisional: bool, reason: str, now: datetime
    ) -> None:
        with self._engine.begin() as conn:
            previous = conn.execute(
                sa.select(work_order.c.due_at).where(work_order.c.id == order_id)
            ).scalar_one()
            conn.execute(
                sa.update(work_order)
                .where(work_order.c.id == order_id)
                .values(
                    due_at=due_at,
                    deadline_provisional=provisional,
                    updated_at=now,
                    next_check_at=work_order.c.created_at,  # the tick looks at the new deadline
                )
            )
            detail = {
                "from": previous.isoformat(),
                "to": due_at.isoformat(),
                "provisional": provisional,
                "reason": reason,
            }
            audit_trail.append(
                conn, [audit_trail.entry(order_id, now, PipelineEventName.deadline_changed, detail)]
            )
