"""Deadlines that change after the fact: provisional ones, once a year's schedule is known."""

from __future__ import annotations

from datetime import datetime

from workorder_pipeline.processors.calendar import Deadline, WorkCalendar
from workorder_pipeline.schemas.policy import Deadlines
from workorder_pipeline.schemas.workorder import WorkOrder
from workorder_pipeline.storage.repository import WorkOrderRepository


def recompute_provisional_deadlines(
    repository: WorkOrderRepository, calendar: WorkCalendar, deadlines: Deadlines, now: datetime
) -> list[WorkOrder]:
    """Recount every open order's provisional deadline with ``calendar``; return the orders
    whose deadline changed (to be published again)."""
    changed = []
    for order in repository.open_with_provisional_deadline():
        if order.working_days is None:
            continue
        due = calendar.add_working_days(order.created_at, order.working_days, deadlines.cutoff)
        if order.upstream_due_at is not None and order.upstream_due_at < due.due_at:
            due = Deadline(order.upstream_due_at, provisional=False)
        if (due.due_at, due.provisional) == (order.due_at, order.deadline_provisional):
            continue
        reason = "official schedule loaded" if not due.provisional else "provisional count changed"
        repository.set_deadline(order.id, due.due_at, due.provisional, reason, now)
        changed.append(
            order.model_copy(update={"due_at": due.due_at, "deadline_provisional": due.provisional})
        )
    return changed
