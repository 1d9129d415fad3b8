"""When the leader's tick must next look at an order: the earliest moment after ``now`` at
which one of its clocks comes due (the reminder and escalations of processors/escalation.py,
the acceptance and re-route clocks of processors/clocks.py, the cards of processors/cards.py).

The tick reads only the orders whose moment has come (``work_order.next_check_at``, indexed)
instead of every running order at every check: its cost follows what is due, not how many
orders are open. Each moment is the rule's own, asked of the rule with a ``now`` beyond every
deadline, so this module cannot disagree with the rules it schedules. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from workorder_pipeline.processors.calendar import WorkCalendar
from workorder_pipeline.processors.cards import due_cards
from workorder_pipeline.processors.clocks import due_acceptance, due_reroute
from workorder_pipeline.processors.escalation import due_escalations
from workorder_pipeline.schemas.policy import Deadlines
from workorder_pipeline.schemas.workorder import Priority, WorkOrder, WorkOrderStatus

#: Later than any clock: every rule lists all its moments.
_END_OF_TIME = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class OrderClocks:
    """What an order's clocks are computed from (a change to any of them needs a new check)."""

    status: WorkOrderStatus
    unit: str
    created_at: datetime
    due_at: datetime
    accept_due_at: datetime | None
    returned_at: datetime | None
    #: Cards may differ by priority (policy: cards_by_priority).
    priority: Priority = Priority.P3


def clock_moments(order: OrderClocks, deadlines: Deadlines, calendar: WorkCalendar | None) -> list[datetime]:
    """Every moment one of the order's clocks comes due, past or future (unsorted). Without a
    calendar, the reminder and escalations only (the workflow's clocks need the calendar)."""
    status, unit = order.status, order.unit
    moments = [
        due.at
        for due in due_escalations(status, unit, order.created_at, order.due_at, deadlines, _END_OF_TIME)
    ]
    if calendar is None:
        return moments
    if deadlines.acceptance is not None:
        moments += [
            due.at
            for due in due_acceptance(status, unit, order.accept_due_at, deadlines.acceptance, _END_OF_TIME)
        ]
    moments += [
        due.at
        for due in due_reroute(status, unit, order.returned_at, deadlines.reroute, calendar, _END_OF_TIME)
    ]
    moments += [
        card.at
        for card in due_cards(
            status, order.due_at, deadlines.cards_for(order.priority), calendar, _END_OF_TIME
        )
    ]
    return moments


def next_check_at(
    order: OrderClocks, deadlines: Deadlines, calendar: WorkCalendar | None, now: datetime
) -> datetime | None:
    """The first moment after ``now`` one of the order's clocks comes due; None when none
    will (closed, or everything fired): the order waits for a change to be looked at again."""
    return min((moment for moment in clock_moments(order, deadlines, calendar) if moment > now), default=None)


def first_checks(
    orders: Sequence[WorkOrder], deadlines: Deadlines, calendar: WorkCalendar | None
) -> dict[str, datetime | None]:
    """Each order's first check, by order id: when the tick must first look at an order being
    dispatched, the earliest moment of its clocks as dispatched, past or future (none has
    fired yet: a deadline already past fires at the tick's next look). The tick need not look
    at every new order at once to learn it. Orders of one batch alike in kind and
    priority share their clocks (one creation time, so one deadline): each set of clocks is
    computed once (~65 µs of calendar arithmetic)."""
    moments: dict[OrderClocks, datetime | None] = {}
    checks: dict[str, datetime | None] = {}
    for order in orders:
        clocks = _as_dispatched(order)
        if clocks not in moments:
            moments[clocks] = min(clock_moments(clocks, deadlines, calendar), default=None)
        checks[order.id] = moments[clocks]
    return checks


def _as_dispatched(order: WorkOrder) -> OrderClocks:
    """The order's clocks once dispatched. Without its unit: a unit only names who is told,
    never when."""
    return OrderClocks(
        WorkOrderStatus.dispatched,
        "",
        order.created_at,
        order.due_at,
        order.accept_due_at,
        None,
        order.priority,
    )
