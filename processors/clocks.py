"""The acceptance clock (签收时限) and the command center's clock to re-route a returned
order (退单): when they are due, and what fires when they pass.

- accept_due_at: counted from the dispatch (or the reassignment: the clock starts again)
  by the policy's limit for the order's kind and priority;
- accept_reminder: to the unit, ``remind_before_hours`` before it, while not accepted;
- accept_overdue: to the command center once it passed unaccepted;
- reroute_overdue: to leadership when a returned order waited longer than the policy's
  ``reroute`` limit for the command center to re-route it.

Each fires once per order, level and deadline (the caller records them with the deadline).
Pure: time comes in as an argument.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta

from workorder_pipeline.processors.calendar import DEFAULT_CUTOFF, Deadline, WorkCalendar
from workorder_pipeline.processors.escalation import DueEscalation, recipient
from workorder_pipeline.schemas.commands import EscalationLevel
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workflow import AcceptanceLimits, TimeLimit
from workorder_pipeline.schemas.workorder import Priority, WorkOrderStatus


def after_limit(
    start: datetime, limit: TimeLimit, calendar: WorkCalendar, cutoff: time = DEFAULT_CUTOFF
) -> Deadline:
    """``start`` plus a policy limit: hours of the clock, or working days (calendar convention)."""
    if limit.hours is not None:
        return Deadline(start + timedelta(hours=limit.hours), provisional=False)
    assert limit.working_days is not None
    return calendar.add_working_days(start, limit.working_days, cutoff)


def accept_due_at(
    dispatched_at: datetime,
    kind: SignalKind,
    priority: Priority,
    limits: AcceptanceLimits,
    calendar: WorkCalendar,
    cutoff: time = DEFAULT_CUTOFF,
) -> datetime:
    """When an order dispatched (or reassigned) at ``dispatched_at`` must be accepted."""
    return after_limit(dispatched_at, limits.limit(kind, priority), calendar, cutoff).due_at


def due_acceptance(
    status: WorkOrderStatus,
    unit: str,
    accept_due: datetime | None,
    limits: AcceptanceLimits,
    now: datetime,
) -> list[DueEscalation]:
    """The acceptance reminder and escalation due by ``now``: only while the order waits,
    dispatched, for its unit to accept it."""
    if status is not WorkOrderStatus.dispatched or accept_due is None:
        return []
    schedule = (
        (EscalationLevel.accept_reminder, accept_due - timedelta(hours=limits.remind_before_hours)),
        (EscalationLevel.accept_overdue, accept_due),
    )
    return [DueEscalation(level, recipient(level, unit), at) for level, at in schedule if at <= now]


def reroute_due_at(
    returned_at: datetime, limit: TimeLimit, calendar: WorkCalendar, cutoff: time = DEFAULT_CUTOFF
) -> datetime:
    """When the command center must have re-routed an order returned at ``returned_at``."""
    return after_limit(returned_at, limit, calendar, cutoff).due_at


def due_reroute(
    status: WorkOrderStatus,
    unit: str,
    returned_at: datetime | None,
    limit: TimeLimit | None,
    calendar: WorkCalendar,
    now: datetime,
    cutoff: time = DEFAULT_CUTOFF,
) -> list[DueEscalation]:
    """The command center's clock: a returned order not re-routed in time goes to leadership."""
    if status is not WorkOrderStatus.returned or returned_at is None or limit is None:
        return []
    due = reroute_due_at(returned_at, limit, calendar, cutoff)
    level = EscalationLevel.reroute_overdue
    return [DueEscalation(level, recipient(level, unit), due)] if due <= now else []
