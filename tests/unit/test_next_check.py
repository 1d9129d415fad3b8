"""When the escalation tick must next look at an order (processors/next_check.py): never
later than a reminder, card or escalation comes due, and never a moment at which none does."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from workorder_pipeline.processors.cards import due_cards
from workorder_pipeline.processors.clocks import due_acceptance, due_reroute
from workorder_pipeline.processors.escalation import due_escalations
from workorder_pipeline.processors.next_check import OrderClocks, clock_moments, first_checks, next_check_at
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import Subject, WorkOrder, WorkOrderStatus
from workorder_pipeline.services.calendar_files import load_calendar
from workorder_pipeline.services.policy_files import load_policy

POLICY_DIR = Path(__file__).resolve().parents[2] / "policy"
DEADLINES = load_policy(POLICY_DIR).deadlines
CALENDAR = load_calendar(POLICY_DIR)
START = datetime(2026, 9, 20, tzinfo=UTC)  # National Day's week off is within reach
TICK = timedelta(microseconds=1)


def fired_by(order: OrderClocks, at: datetime) -> set[tuple[str, datetime]]:
    """What every rule has due for ``order`` by ``at``, as the tick asks them."""
    assert DEADLINES.acceptance is not None
    s, u = order.status, order.unit
    due = [
        *due_escalations(s, u, order.created_at, order.due_at, DEADLINES, at),
        *due_acceptance(s, u, order.accept_due_at, DEADLINES.acceptance, at),
        *due_reroute(s, u, order.returned_at, DEADLINES.reroute, CALENDAR, at),
    ]
    cards = due_cards(s, order.due_at, DEADLINES.cards, CALENDAR, at)
    return {(d.level.value, d.at) for d in due} | {(c.level.value, c.at) for c in cards}


minutes = st.integers(min_value=0, max_value=60 * 24 * 30).map(lambda m: timedelta(minutes=m))
orders = st.builds(
    lambda status, created, allowed, accept, returned: OrderClocks(
        status,
        "squad-1",
        START + created,
        START + created + allowed,
        START + created + accept,
        START + returned,
    ),
    st.sampled_from(WorkOrderStatus),
    minutes,
    minutes.filter(lambda t: t > timedelta(0)),
    minutes,
    minutes,
)


@settings(max_examples=300, deadline=None)
@given(orders, minutes)
def test_nothing_comes_due_between_a_check_and_the_next_one(order: OrderClocks, after: timedelta) -> None:
    now = START + after
    next_check = next_check_at(order, DEADLINES, CALENDAR, now)
    due_now = fired_by(order, now)
    if next_check is None:
        assert fired_by(order, datetime.max.replace(tzinfo=UTC)) == due_now
        return
    assert next_check > now
    assert fired_by(order, next_check - TICK) == due_now  # nothing missed before it
    assert fired_by(order, next_check) != due_now  # and it is a moment something comes due


def test_a_closed_order_is_never_looked_at_again() -> None:
    order = OrderClocks(WorkOrderStatus.closed, "squad-1", START, START + timedelta(days=3), START, None)
    assert next_check_at(order, DEADLINES, CALENDAR, START) is None


def test_without_the_calendar_only_the_reminder_and_escalations_are_scheduled() -> None:
    created = START + timedelta(days=20)
    order = OrderClocks(
        WorkOrderStatus.dispatched, "squad-1", created, created + timedelta(hours=24), created, None
    )
    assert next_check_at(order, DEADLINES, None, created) == created + timedelta(hours=18)
    assert next_check_at(order, DEADLINES, None, created + timedelta(hours=48)) is None


def dispatched_order(order_id: str, unit: str, clocks: OrderClocks) -> WorkOrder:
    return WorkOrder(
        id=order_id,
        kind=SignalKind.vehicle_alarm,
        status=WorkOrderStatus.dispatched,
        unit=unit,
        priority=clocks.priority,
        route_key="route",
        created_at=clocks.created_at,
        due_at=clocks.due_at,
        accept_due_at=clocks.accept_due_at,
        subject=Subject(),
        summary="",
        source_ids=(order_id,),
        first_seen_at=clocks.created_at,
        last_seen_at=clocks.created_at,
    )


@settings(max_examples=200, deadline=None)
@given(orders.map(lambda o: replace(o, status=WorkOrderStatus.dispatched, returned_at=None)))
def test_a_dispatched_orders_first_check_is_when_its_first_clock_comes_due(order: OrderClocks) -> None:
    """Nothing is due before the first check (past or future), something is at it."""
    (first,) = first_checks([dispatched_order("WO-1", order.unit, order)], DEADLINES, CALENDAR).values()
    assert first is not None
    assert fired_by(order, first - TICK) == set()
    assert fired_by(order, first) != set()


def test_alike_orders_of_other_units_share_their_first_check_and_others_keep_theirs() -> None:
    clocks = OrderClocks(
        WorkOrderStatus.dispatched,
        "squad-1",
        START,
        START + timedelta(days=1),
        START + timedelta(hours=1),
        None,
    )
    later = replace(clocks, due_at=START + timedelta(days=10), accept_due_at=START + timedelta(hours=5))
    checks = first_checks(
        [
            dispatched_order("WO-1", "squad-1", clocks),
            dispatched_order("WO-2", "command-center", replace(clocks, unit="command-center")),
            dispatched_order("WO-3", "squad-1", later),
        ],
        DEADLINES,
        CALENDAR,
    )
    assert checks["WO-1"] == checks["WO-2"] == min(clock_moments(clocks, DEADLINES, CALENDAR))
    assert checks["WO-3"] == min(clock_moments(later, DEADLINES, CALENDAR)) != checks["WO-1"]
