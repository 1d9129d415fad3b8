"""The figures' definitions (processors/figures.py): hand-made cases and properties."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workorder_pipeline.processors.figures import (
    ALL_UNITS,
    Figure,
    OrderFacts,
    Period,
    Rate,
    ScoreWeights,
    unit_figures,
)
from workorder_pipeline.schemas.commands import CallbackResult
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import Priority, WorkOrderStatus

NOW = datetime(2026, 12, 20, 4, 0, tzinfo=UTC)
DECEMBER = Period.month(2026, 12)
WEIGHTS = ScoreWeights()
T0 = datetime(2026, 12, 2, 2, 0, tzinfo=UTC)


def order(**changes: object) -> OrderFacts:
    base = OrderFacts(
        id="WO-1",
        unit="squad-1",
        kind=SignalKind.complaint,
        priority=Priority.P2,
        status=WorkOrderStatus.in_progress,
        created_at=T0,
        accept_due_at=T0 + timedelta(hours=2),
        accepted_at=T0 + timedelta(hours=1),
        due_at=T0 + timedelta(days=30),
        closed_at=None,
        closed_on_time=None,
        callback=None,
        rework_count=0,
        returns=0,
        extended=False,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def totals(facts: list[OrderFacts], now: datetime = NOW) -> dict[Figure, Rate]:
    rows = unit_figures(facts, DECEMBER, WEIGHTS, now)
    return dict(next(r for r in rows if r.unit == ALL_UNITS and r.kind is None).rates)


def test_a_month_is_a_calendar_month_of_china_time() -> None:
    period = Period.month(2026, 12)
    assert period.start == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert period.end == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)
    assert period.label == "2026-12"
    assert Period.month(2026, 1).start == datetime(2025, 12, 31, 16, tzinfo=UTC)
    # Early on the 1st in Beijing is still the previous month in UTC: it belongs to the new one.
    first_morning = datetime(2026, 12, 31, 17, 0, tzinfo=UTC)
    assert Period.this_month(first_morning).label == "2027-01"
    assert Period.last_month(first_morning).label == "2026-12"
    assert Period.last_month(datetime(2027, 1, 15, tzinfo=UTC)).label == "2026-12"


def test_a_rolling_period_ends_where_it_is_told() -> None:
    period = Period.rolling(NOW, 30)
    assert (period.start, period.end, period.label) == (NOW - timedelta(days=30), NOW, "30d")
    with pytest.raises(ValueError):
        Period.rolling(NOW, 0)


def test_a_rate_with_nothing_judged_has_no_value_rather_than_nan() -> None:
    assert Rate(0, 0).value is None
    assert Rate(1, 3).value == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        Rate(4, 3)


def test_every_figure_has_its_chinese_name() -> None:
    assert Figure.closed.label_zh == "办结率"
    assert Figure.accepted_on_time.label_zh == "按时签收率"
    assert {f.label_zh for f in Figure} >= {"按时办结率", "满意率", "发回重办率", "退单率", "延期率"}


def test_orders_created_outside_the_period_are_not_in_its_cohort() -> None:
    late = order(id="WO-2", created_at=DECEMBER.end)
    early = order(id="WO-3", created_at=DECEMBER.start - timedelta(seconds=1))
    assert totals([order(), late, early])[Figure.closed] == Rate(0, 1)


def test_a_reclosed_order_counts_once_as_it_stands() -> None:
    closed = order(
        status=WorkOrderStatus.closed,
        closed_at=T0 + timedelta(days=40),
        closed_on_time=False,
        callback=CallbackResult.satisfied,
        rework_count=1,
    )
    rates = totals([closed])
    assert rates[Figure.closed] == Rate(1, 1)
    assert rates[Figure.closed_on_time] == Rate(0, 1)
    assert rates[Figure.satisfied] == Rate(1, 1)
    assert rates[Figure.reworked] == Rate(1, 1)


def test_an_open_order_past_its_deadline_counts_against_closing_on_time() -> None:
    overdue = order(due_at=NOW - timedelta(hours=1))
    not_yet = order(id="WO-2", due_at=NOW + timedelta(hours=1))
    assert totals([overdue, not_yet])[Figure.closed_on_time] == Rate(0, 1)


def test_a_returned_order_waiting_for_rerouting_is_not_judged_on_time() -> None:
    waiting = order(
        unit="command-center",
        status=WorkOrderStatus.returned,
        accepted_at=None,
        accept_due_at=NOW - timedelta(days=1),
        due_at=NOW - timedelta(hours=1),
        returns=1,
    )
    rates = totals([waiting])
    assert rates[Figure.closed_on_time] == Rate(0, 0)
    assert rates[Figure.accepted_on_time] == Rate(0, 0)
    assert rates[Figure.returned] == Rate(1, 1)
    assert rates[Figure.closed] == Rate(0, 1)


def test_acceptance_is_judged_once_accepted_or_once_its_deadline_passed() -> None:
    late = order(id="a", accepted_at=T0 + timedelta(hours=3))
    never = order(id="b", accepted_at=None, status=WorkOrderStatus.dispatched)
    still_time = order(id="c", accepted_at=None, accept_due_at=NOW + timedelta(minutes=5))
    no_clock = order(id="d", accept_due_at=None)
    assert totals([order(), late, never, still_time, no_clock])[Figure.accepted_on_time] == Rate(1, 3)


def test_satisfaction_leaves_out_unreachable_complainants_and_orders_without_callback() -> None:
    facts = [
        order(id="a", callback=CallbackResult.satisfied),
        order(id="b", callback=CallbackResult.basically_satisfied),
        order(id="c", callback=CallbackResult.unsatisfied),
        order(id="d", callback=CallbackResult.unreachable),
        order(id="e", callback=None),
    ]
    assert totals(facts)[Figure.satisfied] == Rate(2, 3)


def test_rows_come_per_unit_per_kind_and_in_total() -> None:
    facts = [order(id="a"), order(id="b", unit="squad-2", kind=SignalKind.vehicle_alarm)]
    keys = [(r.unit, r.kind) for r in unit_figures(facts, DECEMBER, WEIGHTS, NOW)]
    assert keys == [
        (ALL_UNITS, None),
        (ALL_UNITS, SignalKind.complaint),
        (ALL_UNITS, SignalKind.vehicle_alarm),
        ("squad-1", None),
        ("squad-1", SignalKind.complaint),
        ("squad-2", None),
        ("squad-2", SignalKind.vehicle_alarm),
    ]


def test_the_score_is_the_weighted_mean_of_the_rates_a_unit_has() -> None:
    weights = ScoreWeights(
        accepted_on_time=0, closed=1, closed_on_time=0, satisfied=0, reworked=1, returned=0, extended=0
    )
    facts = [order(id="a", status=WorkOrderStatus.closed, closed_at=T0, closed_on_time=True), order(id="b")]
    rows = unit_figures(facts, DECEMBER, weights, NOW)
    # closed 1/2 and never reworked (1 - 0): (0.5 + 1) / 2.
    assert rows[0].score == 75.0


def test_weights_all_zero_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one figure"):
        ScoreWeights(
            accepted_on_time=0, closed=0, closed_on_time=0, satisfied=0, reworked=0, returned=0, extended=0
        )


# ---------------------------------------------------------------- properties

_times = st.datetimes(
    min_value=datetime(2026, 11, 20), max_value=datetime(2027, 1, 10), timezones=st.just(UTC)
)


@st.composite
def facts(draw: st.DrawFn, index: int = 0) -> OrderFacts:
    created = draw(_times)
    closed = draw(st.booleans())
    status = WorkOrderStatus.closed if closed else draw(st.sampled_from(list(WorkOrderStatus)))
    if status is WorkOrderStatus.closed:
        closed = True
    return OrderFacts(
        id=f"WO-{draw(st.integers(0, 10**9))}",
        unit=draw(st.sampled_from(["squad-1", "squad-2", "command-center"])),
        kind=draw(st.sampled_from(list(SignalKind))),
        priority=draw(st.sampled_from(list(Priority))),
        status=status,
        created_at=created,
        accept_due_at=draw(st.none() | _times),
        accepted_at=draw(st.none() | _times),
        due_at=draw(_times),
        closed_at=draw(_times) if closed else None,
        closed_on_time=draw(st.booleans()) if closed else None,
        callback=draw(st.none() | st.sampled_from(list(CallbackResult))),
        rework_count=draw(st.integers(0, 5)),
        returns=draw(st.integers(0, 3)),
        extended=draw(st.booleans()),
    )


@given(st.lists(facts(), max_size=40, unique_by=lambda o: o.id), _times)
def test_every_rate_lies_between_zero_and_one_and_totals_add_up(
    orders: list[OrderFacts], now: datetime
) -> None:
    rows = unit_figures(orders, DECEMBER, WEIGHTS, now)
    cohort = [o for o in orders if o.created_at in DECEMBER]
    for row in rows:
        assert set(row.rates) == set(Figure)
        for rate in row.rates.values():
            assert rate.value is None or 0.0 <= rate.value <= 1.0
        assert row.score is None or 0.0 <= row.score <= 100.0
        # Orders, not events: every figure over all orders has the unit's orders as denominator.
        size = sum(1 for o in cohort if row.unit in (ALL_UNITS, o.unit) and row.kind in (None, o.kind))
        for figure in (Figure.closed, Figure.reworked, Figure.returned, Figure.extended):
            assert row.rates[figure].denominator == size
        # Every closed order is judged on closing on time.
        assert row.rates[Figure.closed_on_time].denominator >= row.rates[Figure.closed].numerator
    by_key = {(r.unit, r.kind): r for r in rows}
    for figure in Figure:
        units = sum((r.rates[figure] for r in rows if r.unit != ALL_UNITS and r.kind is None), Rate(0, 0))
        kinds = sum((r.rates[figure] for r in rows if r.unit == ALL_UNITS and r.kind), Rate(0, 0))
        if cohort:
            assert units == kinds == by_key[ALL_UNITS, None].rates[figure]


@given(st.lists(facts(), min_size=1, max_size=30, unique_by=lambda o: o.id), _times, st.integers(0, 29))
def test_moving_an_order_to_another_unit_moves_it_wholly(
    orders: list[OrderFacts], now: datetime, pick: int
) -> None:
    moved = orders[pick % len(orders)]
    target = "squad-9"
    after = [replace(o, unit=target) if o is moved else o for o in orders]
    before_rows = {(r.unit, r.kind): r for r in unit_figures(orders, DECEMBER, WEIGHTS, now)}
    after_rows = {(r.unit, r.kind): r for r in unit_figures(after, DECEMBER, WEIGHTS, now)}
    if moved.created_at not in DECEMBER:
        assert before_rows.keys() == after_rows.keys()
        return
    alone = {(r.unit, r.kind): r for r in unit_figures([moved], DECEMBER, WEIGHTS, now)}
    for figure in Figure:
        contribution = alone[ALL_UNITS, None].rates[figure]
        assert after_rows[target, None].rates[figure] == contribution
        old = before_rows[moved.unit, None].rates[figure]
        new = after_rows.get((moved.unit, None))
        left = new.rates[figure] if new else Rate(0, 0)
        assert left + contribution == old
        assert after_rows[ALL_UNITS, None].rates[figure] == before_rows[ALL_UNITS, None].rates[figure]


@given(st.lists(facts(), min_size=1, max_size=5), _times)
def test_an_order_closed_again_and_again_counts_once_as_it_stands_last(
    closures: list[OrderFacts], now: datetime
) -> None:
    # Each item is the same order as it stood after one of its closures (reopened between).
    history = [replace(c, id="WO-1", created_at=T0) for c in closures]
    assert totals(history, now) == totals(history[-1:], now)
