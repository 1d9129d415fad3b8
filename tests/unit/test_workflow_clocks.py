"""The acceptance clock (签收时限), the command center's clock for returned orders, and the
working-day arithmetic they, extensions and cards count with."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workorder_pipeline.processors.calendar import WorkCalendar, YearSchedule
from workorder_pipeline.processors.clocks import accept_due_at, due_acceptance, due_reroute
from workorder_pipeline.processors.escalation import LEADERSHIP
from workorder_pipeline.processors.lifecycle import Clocks, LifecyclePolicy, OrderState, Transition, decide
from workorder_pipeline.schemas.commands import EscalationLevel, WorkOrderCommand
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.times import CHINA_STANDARD_TIME as CST
from workorder_pipeline.schemas.workflow import AcceptanceLimits, TimeLimit
from workorder_pipeline.schemas.workorder import COMMAND_CENTER, Priority, WorkOrderStatus

S = WorkOrderStatus
#: National Day 2026 as a made-up official notice: 1-7 October off, Sunday 27 September and
#: Saturday 10 October worked (调休).
CALENDAR = WorkCalendar(
    {
        2026: YearSchedule(
            2026,
            holidays=frozenset(date(2026, 10, d) for d in range(1, 8)),
            workdays=frozenset({date(2026, 9, 27), date(2026, 10, 10)}),
        )
    }
)
LIMITS = AcceptanceLimits(
    default={
        Priority.P1: TimeLimit(hours=1),
        Priority.P2: TimeLimit(hours=4),
        Priority.P3: TimeLimit(working_days=1),
    },
    by_kind={SignalKind.complaint: {Priority.P3: TimeLimit(hours=8)}},
    remind_before_hours=0.5,
)


def cst(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=CST)


# ---------------------------------------------------------------- calendar arithmetic


@pytest.mark.parametrize(
    ("moment", "days", "expected"),
    [
        pytest.param(cst(2026, 9, 25, 15), 1, cst(2026, 9, 27, 15), id="fri-to-worked-sunday"),
        pytest.param(cst(2026, 9, 30), 1, cst(2026, 10, 1), id="end-of-tue-to-end-of-wed-30th"),
        pytest.param(cst(2026, 10, 1), 1, cst(2026, 10, 9), id="end-of-30th-over-the-holiday-to-end-of-8th"),
        pytest.param(cst(2026, 10, 1), 2, cst(2026, 10, 10), id="then-end-of-the-9th"),
        pytest.param(cst(2026, 10, 1), 3, cst(2026, 10, 11), id="then-end-of-worked-saturday"),
        pytest.param(cst(2026, 10, 9), -1, cst(2026, 10, 1), id="back-over-the-holiday"),
        pytest.param(cst(2026, 10, 8, 10), -1, cst(2026, 9, 30, 10), id="back-keeps-the-clock-time"),
        pytest.param(cst(2026, 10, 8, 10), 0, cst(2026, 10, 8, 10), id="zero-days-is-the-same-moment"),
    ],
)
def test_working_days_shift_over_holidays_and_make_up_days(
    moment: datetime, days: int, expected: datetime
) -> None:
    assert CALENDAR.shift_working_days(moment, days).due_at == expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        pytest.param(cst(2026, 10, 1), cst(2026, 10, 8), id="end-of-30th-then-8th"),
        pytest.param(cst(2026, 9, 26), cst(2026, 9, 27), id="end-of-fri-then-worked-sunday"),
        pytest.param(cst(2026, 9, 28, 15), cst(2026, 9, 29), id="mid-day-then-next-morning"),
    ],
)
def test_the_first_working_day_after_starts_at_midnight_china_time(
    moment: datetime, expected: datetime
) -> None:
    assert CALENDAR.working_day_start_after(moment, 1).due_at == expected


@given(
    st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 20), timezones=st.just(UTC)),
    st.integers(min_value=1, max_value=30),
)
def test_shifting_forward_then_back_returns_to_a_working_days_moment(moment: datetime, days: int) -> None:
    later = CALENDAR.shift_working_days(moment, days).due_at
    assert later > moment
    back = CALENDAR.shift_working_days(later, -days).due_at
    assert back <= moment  # exactly it when moment is on a working day; else the last one before
    assert CALENDAR.shift_working_days(back, days).due_at == later


def test_a_year_without_a_schedule_counts_provisionally() -> None:
    assert CALENDAR.shift_working_days(cst(2026, 12, 31, 12), 1).provisional
    assert not CALENDAR.shift_working_days(cst(2026, 12, 30, 12), 1).provisional


# ---------------------------------------------------------------- acceptance deadline


@pytest.mark.parametrize(
    ("kind", "priority", "dispatched", "expected"),
    [
        pytest.param(
            SignalKind.vehicle_alarm,
            Priority.P1,
            cst(2026, 9, 30, 23, 30),
            cst(2026, 10, 1, 0, 30),
            id="hours-ignore-holidays",
        ),
        pytest.param(
            SignalKind.vehicle_alarm,
            Priority.P3,
            cst(2026, 9, 30, 9),
            cst(2026, 10, 9),
            id="a-working-day-skips-the-holiday",
        ),
        pytest.param(
            SignalKind.vehicle_alarm,
            Priority.P3,
            cst(2026, 9, 29, 18),
            cst(2026, 10, 9),
            id="after-the-cutoff-counts-from-next-day",
        ),
        pytest.param(
            SignalKind.complaint,
            Priority.P3,
            cst(2026, 9, 30, 9),
            cst(2026, 9, 30, 17),
            id="per-kind-override",
        ),
        pytest.param(
            SignalKind.complaint,
            Priority.P2,
            cst(2026, 9, 30, 9),
            cst(2026, 9, 30, 13),
            id="kind-falls-back-to-default",
        ),
    ],
)
def test_accept_due_at_follows_kind_priority_and_calendar(
    kind: SignalKind, priority: Priority, dispatched: datetime, expected: datetime
) -> None:
    assert accept_due_at(dispatched, kind, priority, LIMITS, CALENDAR) == expected


ACCEPT_BY = cst(2026, 9, 30, 12)


@pytest.mark.parametrize(
    ("now", "status", "expected"),
    [
        pytest.param(ACCEPT_BY - timedelta(minutes=31), S.dispatched, [], id="before-the-reminder"),
        pytest.param(
            ACCEPT_BY - timedelta(minutes=30), S.dispatched, [EscalationLevel.accept_reminder], id="reminder"
        ),
        pytest.param(
            ACCEPT_BY,
            S.dispatched,
            [EscalationLevel.accept_reminder, EscalationLevel.accept_overdue],
            id="overdue",
        ),
        pytest.param(ACCEPT_BY + timedelta(days=9), S.accepted, [], id="accepted-stops-it"),
        pytest.param(ACCEPT_BY + timedelta(days=9), S.returned, [], id="returned-stops-it"),
    ],
)
def test_acceptance_reminder_and_escalation_while_unaccepted(
    now: datetime, status: WorkOrderStatus, expected: list[EscalationLevel]
) -> None:
    due = due_acceptance(status, "squad-1", ACCEPT_BY, LIMITS, now)
    assert [d.level for d in due] == expected
    assert [d.recipient for d in due] == ["squad-1", COMMAND_CENTER][: len(expected)]


def test_an_order_with_no_acceptance_deadline_escalates_nothing() -> None:
    assert due_acceptance(S.dispatched, "squad-1", None, LIMITS, ACCEPT_BY + timedelta(days=30)) == []


def _reassign(at: datetime, clocks: Clocks) -> Transition:
    state = OrderState(
        id="WO-1",
        kind=SignalKind.vehicle_alarm,
        priority=Priority.P2,
        status=S.dispatched,
        unit="squad-1",
        due_at=cst(2026, 10, 12),
        known_units=frozenset({"squad-1", "squad-2", COMMAND_CENTER}),
        accept_due_at=cst(2026, 9, 28, 13),
    )
    command = WorkOrderCommand.model_validate(
        {
            "command_id": "c-1",
            "work_order_id": "WO-1",
            "action": "reassign",
            "actor": {"unit": COMMAND_CENTER},
            "at": at.isoformat(),
            "to_unit": "squad-2",
        }
    )
    result = decide(state, command, LifecyclePolicy(), clocks)
    assert isinstance(result, Transition), result
    return result


def test_the_acceptance_clock_restarts_on_reassignment() -> None:
    done = _reassign(cst(2026, 9, 29, 10), Clocks(CALENDAR, LIMITS))
    assert done.changes["accept_due_at"] == cst(2026, 9, 29, 14)
    assert datetime.fromisoformat(done.detail["accept_due_at"]) == cst(2026, 9, 29, 14)


def test_without_acceptance_limits_reassignment_sets_no_acceptance_deadline() -> None:
    assert "accept_due_at" not in _reassign(cst(2026, 9, 29, 10), Clocks(CALENDAR)).changes


# ---------------------------------------------------------------- the command center's clock


@pytest.mark.parametrize(
    ("limit", "now", "fires"),
    [
        pytest.param(TimeLimit(hours=4), cst(2026, 9, 30, 13, 59), False, id="hours-not-yet"),
        pytest.param(TimeLimit(hours=4), cst(2026, 9, 30, 14), True, id="hours-passed"),
        pytest.param(
            TimeLimit(working_days=1), cst(2026, 10, 8, 23), False, id="working-day-over-holiday-not-yet"
        ),
        pytest.param(TimeLimit(working_days=1), cst(2026, 10, 9), True, id="working-day-over-holiday-passed"),
    ],
)
def test_a_returned_order_not_rerouted_in_time_goes_to_leadership(
    limit: TimeLimit, now: datetime, fires: bool
) -> None:
    due = due_reroute(S.returned, COMMAND_CENTER, cst(2026, 9, 30, 10), limit, CALENDAR, now)
    assert [(d.level, d.recipient) for d in due] == (
        [(EscalationLevel.reroute_overdue, LEADERSHIP)] if fires else []
    )


@pytest.mark.parametrize("status", [s for s in S if s is not S.returned], ids=str)
def test_only_a_returned_order_runs_the_command_centers_clock(status: WorkOrderStatus) -> None:
    later = cst(2027, 1, 1)
    assert due_reroute(status, "squad-1", cst(2026, 9, 30, 10), TimeLimit(hours=1), CALENDAR, later) == []
