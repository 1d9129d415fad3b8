"""Yellow and red cards: when each comes due around the deadline, on the official calendar,
and that each fires once per order, level and deadline."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workorder_pipeline.processors.calendar import WorkCalendar, YearSchedule
from workorder_pipeline.processors.cards import card_time, due_cards
from workorder_pipeline.schemas.times import CHINA_STANDARD_TIME as CST
from workorder_pipeline.schemas.workflow import DEFAULT_CARDS, CardLevel, CardRule
from workorder_pipeline.schemas.workorder import WorkOrderStatus

S = WorkOrderStatus
Y, R = CardLevel.yellow, CardLevel.red
#: National Day 2026 (made-up notice): 1-7 October off, Sunday 27 September and Saturday
#: 10 October worked (调休).
CALENDAR = WorkCalendar(
    {
        2026: YearSchedule(
            2026,
            frozenset(date(2026, 10, d) for d in range(1, 8)),
            frozenset({date(2026, 9, 27), date(2026, 10, 10)}),
        )
    }
)


def cst(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=CST)


@pytest.mark.parametrize(
    ("due", "yellow", "red"),
    [
        pytest.param(
            cst(11, 19), cst(11, 18), cst(11, 19), id="end-of-wed:yellow-wed-morning,red-thu-morning"
        ),
        pytest.param(cst(11, 21), cst(11, 20), cst(11, 23), id="end-of-fri:red-on-monday"),
        pytest.param(cst(10, 1), cst(9, 30), cst(10, 8), id="end-of-30th:red-after-the-holiday"),
        pytest.param(cst(10, 9), cst(10, 1), cst(10, 9), id="end-of-8th:yellow-at-the-end-of-the-30th"),
        pytest.param(cst(10, 10), cst(10, 9), cst(10, 10), id="end-of-9th:red-on-worked-saturday"),
        pytest.param(cst(9, 28), cst(9, 26), cst(9, 28), id="end-of-worked-sunday:yellow-at-end-of-friday"),
        pytest.param(cst(11, 18, 15), cst(11, 17, 15), cst(11, 19), id="mid-day-deadline"),
        pytest.param(cst(11, 22, 10), cst(11, 20, 10), cst(11, 23), id="deadline-on-a-sunday"),
    ],
)
def test_yellow_one_working_day_before_red_on_the_first_working_day_after(
    due: datetime, yellow: datetime, red: datetime
) -> None:
    assert [card_time(rule, due, CALENDAR) for rule in DEFAULT_CARDS] == [yellow, red]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (CardRule(level=Y, hours_before=6), cst(11, 18, 18)),
        (CardRule(level=R, hours_after=2), cst(11, 19, 2)),
        (CardRule(level=Y, working_days_before=2), cst(11, 17)),
        (CardRule(level=R, working_days_after=2), cst(11, 20)),
    ],
    ids=["hours-before", "hours-after", "two-working-days-before", "second-working-day-after"],
)
def test_levels_may_be_set_in_hours_or_other_numbers_of_working_days(
    rule: CardRule, expected: datetime
) -> None:
    assert card_time(rule, cst(11, 19), CALENDAR) == expected


DUE = cst(11, 21)  # end of Friday


@pytest.mark.parametrize(
    ("now", "fired", "expected"),
    [
        pytest.param(cst(11, 19, 23, 59), set(), [], id="before-yellow"),
        pytest.param(cst(11, 20), set(), [Y], id="yellow"),
        pytest.param(cst(11, 22, 12), set(), [Y], id="weekend-no-red-yet"),
        pytest.param(cst(11, 23), set(), [Y, R], id="a-worker-down-fires-both"),
        pytest.param(cst(11, 23), {(Y, DUE)}, [R], id="yellow-fired-once"),
        pytest.param(cst(11, 23), {(Y, DUE), (R, DUE)}, [], id="both-fired"),
        pytest.param(
            cst(11, 23), {(Y, cst(11, 20)), (R, cst(11, 20))}, [Y, R], id="fired-for-another-deadline"
        ),
        pytest.param(cst(11, 23), {(Y, DUE.astimezone(UTC))}, [R], id="same-deadline-in-utc"),
    ],
)
def test_each_card_fires_once_per_order_level_and_deadline(
    now: datetime, fired: set[tuple[CardLevel, datetime]], expected: list[CardLevel]
) -> None:
    assert [
        card.level for card in due_cards(S.in_progress, DUE, DEFAULT_CARDS, CALENDAR, now, fired)
    ] == expected


@pytest.mark.parametrize("status", [S.registered, S.returned, S.closed], ids=str)
def test_no_card_while_the_clock_is_stopped(status: WorkOrderStatus) -> None:
    assert due_cards(status, DUE, DEFAULT_CARDS, CALENDAR, cst(12, 31)) == []


MOMENTS = st.datetimes(
    min_value=datetime(2026, 1, 5), max_value=datetime(2026, 12, 20), timezones=st.just(UTC)
)


@given(MOMENTS, MOMENTS)
def test_yellow_comes_before_the_deadline_and_red_after_and_each_once(due: datetime, now: datetime) -> None:
    yellow, red = (card_time(rule, due, CALENDAR) for rule in DEFAULT_CARDS)
    assert yellow < due <= red
    assert CALENDAR.is_working_day(red.astimezone(CST).date())
    first = due_cards(S.accepted, due, DEFAULT_CARDS, CALENDAR, now)
    fired = {(card.level, card.due_at) for card in first}
    assert due_cards(S.accepted, due, DEFAULT_CARDS, CALENDAR, now + timedelta(days=30), fired) == [
        card
        for card in due_cards(S.accepted, due, DEFAULT_CARDS, CALENDAR, now + timedelta(days=30))
        if card.level not in {c.level for c in first}
    ]
