"""processors/platform_silence: is a platform silent at a moment, by its cadence? Times are
China time; 2026-11-23 is a Monday; 2026-10-01..07 are holidays, Saturday 10-10 a workday."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workorder_pipeline.processors.calendar import WorkCalendar, YearSchedule
from workorder_pipeline.processors.platform_silence import PlatformState, judge
from workorder_pipeline.schemas.platforms import ExpectedPlatform
from workorder_pipeline.schemas.times import CHINA_STANDARD_TIME

HEARD, SILENT, NEVER = PlatformState.heard, PlatformState.silent, PlatformState.never_sent
CALENDAR = WorkCalendar(
    {
        2026: YearSchedule(
            2026,
            frozenset(date(2026, 10, day) for day in range(1, 8)),
            frozenset({date(2026, 10, 10)}),
        )
    }
)


def cst(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=CHINA_STANDARD_TIME)


def platform(**fields: Any) -> ExpectedPlatform:
    return ExpectedPlatform.model_validate({"id": "p-1", "name": "平台", **fields})


ALARMS = platform(cadence="continuous", silent_after_minutes=15)
SUSPECTS = platform(cadence="daily", by="09:00")
SUSPECTS_ON_WORKING_DAYS = platform(cadence="daily", by="09:00", days="working")
HOTLINE = platform(
    cadence="working_hours", opens="08:30", closes="17:30", days="working", silent_after_minutes=120
)
EVERY_DAY_DESK = platform(cadence="working_hours", opens="08:30", closes="17:30", silent_after_minutes=60)

CASES = [
    # (platform, last event, now, state, why)
    (ALARMS, None, "2026-11-23 10:00", NEVER, "never sent: silent from the start"),
    (ALARMS, "2026-11-23 09:45:01", "2026-11-23 10:00", HEARD, "14m59s"),
    (ALARMS, "2026-11-23 09:45", "2026-11-23 10:00", HEARD, "exactly 15 minutes"),
    (ALARMS, "2026-11-23 09:44:59", "2026-11-23 10:00", SILENT, "15m01s"),
    (ALARMS, "2026-10-01 09:00", "2026-11-23 10:00", SILENT, "silent for weeks stays silent"),
    (ALARMS, "2026-11-23 03:00", "2026-11-23 03:10", HEARD, "nights count like days"),
    (SUSPECTS, "2026-11-23 00:00", "2026-11-23 10:00", HEARD, "today's list (event time: its day)"),
    (SUSPECTS, "2026-11-22 00:00", "2026-11-23 08:59", HEARD, "today's list not due yet"),
    (SUSPECTS, "2026-11-22 00:00", "2026-11-23 09:00", SILENT, "today's list due now and missing"),
    (SUSPECTS, "2026-11-22 00:00", "2026-11-23 23:59", SILENT, "still missing at night"),
    (SUSPECTS, "2026-11-20 00:00", "2026-11-23 10:00", SILENT, "missing for days"),
    (SUSPECTS, "2026-11-22 09:30", "2026-11-23 10:00", HEARD, "newer than yesterday's due time"),
    (SUSPECTS, None, "2026-11-23 10:00", NEVER, "never sent"),
    (SUSPECTS_ON_WORKING_DAYS, "2026-11-20 00:00", "2026-11-22 10:00", HEARD, "Friday's list on Sunday"),
    (SUSPECTS_ON_WORKING_DAYS, "2026-11-20 00:00", "2026-11-23 10:00", SILENT, "Monday's list missing"),
    (SUSPECTS_ON_WORKING_DAYS, "2026-09-30 00:00", "2026-10-07 12:00", HEARD, "no list due in a holiday"),
    (SUSPECTS_ON_WORKING_DAYS, "2026-09-30 00:00", "2026-10-08 09:00", SILENT, "due again after it"),
    (HOTLINE, "2026-11-20 17:00", "2026-11-23 10:00", HEARD, "30 min Friday + 90 min Monday"),
    (HOTLINE, "2026-11-20 17:00", "2026-11-23 10:01", SILENT, "121 minutes of opening hours"),
    (HOTLINE, "2026-11-20 16:00", "2026-11-22 12:00", HEARD, "the weekend does not count"),
    (HOTLINE, "2026-11-20 12:00", "2026-11-23 08:00", SILENT, "silent since Friday noon"),
    (HOTLINE, "2026-11-23 18:00", "2026-11-24 08:29", HEARD, "a night after closing"),
    (HOTLINE, "2026-09-30 17:00", "2026-10-08 10:00", HEARD, "the National Day holiday does not count"),
    (HOTLINE, "2026-10-09 17:30", "2026-10-10 12:00", SILENT, "a Saturday workday (调休) counts"),
    (HOTLINE, None, "2026-11-22 12:00", NEVER, "never sent, even on a Sunday"),
    (EVERY_DAY_DESK, "2026-11-21 17:00", "2026-11-22 09:00", HEARD, "30 min Saturday + 30 min Sunday"),
    (EVERY_DAY_DESK, "2026-11-21 17:00", "2026-11-22 09:01", SILENT, "days: every counts Sundays"),
    (EVERY_DAY_DESK, "2026-11-22 12:00", "2026-11-22 11:00", HEARD, "a last event after now (clock skew)"),
]


@pytest.mark.parametrize(("expected", "last", "now", "state", "why"), CASES, ids=[c[-1] for c in CASES])
def test_a_platform_is_silent_by_its_cadence(
    expected: ExpectedPlatform, last: str | None, now: str, state: PlatformState, why: str
) -> None:
    assert judge(expected, cst(last) if last else None, cst(now), CALENDAR) is state, why


def test_due_times_are_china_time_whatever_the_zone_of_the_moment() -> None:
    early = platform(cadence="daily", by="06:00")
    # 07:00 on the 24th in China is still the 23rd in UTC: the 24th's 06:00 delivery is due.
    now = cst("2026-11-24 07:00").astimezone(UTC)
    assert judge(early, cst("2026-11-23 05:00").astimezone(UTC), now, CALENDAR) is SILENT
    assert judge(early, cst("2026-11-24 05:00").astimezone(UTC), now, CALENDAR) is HEARD


PLATFORMS = st.sampled_from([ALARMS, SUSPECTS, SUSPECTS_ON_WORKING_DAYS, HOTLINE, EVERY_DAY_DESK])
MOMENTS = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31)).map(
    lambda moment: moment.replace(tzinfo=CHINA_STANDARD_TIME)
)


@given(PLATFORMS, MOMENTS, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20)), MOMENTS)
def test_a_silent_platform_stays_silent_until_it_sends(
    expected: ExpectedPlatform, last: datetime, later: timedelta, now: datetime
) -> None:
    if now < last:
        last, now = now, last
    if judge(expected, last, now, CALENDAR) is SILENT:
        assert judge(expected, last, now + later, CALENDAR) is SILENT


@given(PLATFORMS, MOMENTS, MOMENTS, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=20)))
def test_a_newer_event_never_makes_a_heard_platform_silent(
    expected: ExpectedPlatform, last: datetime, now: datetime, newer: timedelta
) -> None:
    if now < last:
        last, now = now, last
    if judge(expected, last, now, CALENDAR) is HEARD:
        assert judge(expected, min(now, last + newer), now, CALENDAR) is HEARD
