"""Is a publishing platform silent at a moment, given its cadence and when we last heard it?

Pure: the moment, the last event time (from the database) and the working calendar come in
as arguments. Times of day are China Standard Time.

- continuous: silent when nothing came for more than ``silent_after_minutes``.
- daily, due ``by`` HH:MM: each delivery is due in the window that ends at a due time and
  starts at the one before; once a due time has passed, silent until something newer than
  the window's start has come. (The suspect list's event time is its day, 00:00: the
  list of day D, due D 09:00, is newer than D-1 09:00.)
- working_hours: silent when more than ``silent_after_minutes`` of opening hours (of
  every day, or of working days) passed since the last signal: nights and, for working
  days, weekends and holidays do not count.

A platform never heard of is ``never_sent`` (an alert of its own: a link never set up).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from enum import StrEnum

from workorder_pipeline.processors.calendar import WorkCalendar
from workorder_pipeline.schemas.platforms import Cadence, Days, ExpectedPlatform
from workorder_pipeline.schemas.times import CHINA_STANDARD_TIME

#: How far back a due time or an opening hour is looked for: a platform that sends only on
#: working days has at least one in any 30 days (the longest official holiday is 8 days).
LOOKBACK_DAYS = 30


class PlatformState(StrEnum):
    heard = "heard"
    silent = "silent"
    never_sent = "never_sent"


def judge(
    platform: ExpectedPlatform, last_seen: datetime | None, now: datetime, calendar: WorkCalendar
) -> PlatformState:
    """The platform's state at ``now``; ``last_seen``: its newest event time (None: never)."""
    if last_seen is None:
        return PlatformState.never_sent
    if platform.cadence is Cadence.continuous:
        assert platform.silent_after_minutes is not None
        quiet = now - last_seen > timedelta(minutes=platform.silent_after_minutes)
    elif platform.cadence is Cadence.daily:
        assert platform.by is not None
        due_times = _due_times(platform.by, platform.days, now, calendar)
        quiet = len(due_times) == 2 and last_seen <= due_times[1]
    else:
        assert platform.silent_after_minutes is not None
        assert platform.opens is not None and platform.closes is not None
        limit = timedelta(minutes=platform.silent_after_minutes)
        quiet = _open_time_between(platform, last_seen, now, calendar, limit) > limit
    return PlatformState.silent if quiet else PlatformState.heard


def _active(day: date, days: Days, calendar: WorkCalendar) -> bool:
    return days is Days.every or calendar.is_working_day(day)


def _due_times(by: time, days: Days, now: datetime, calendar: WorkCalendar) -> list[datetime]:
    """The last two due times at or before ``now`` (fewer when none in LOOKBACK_DAYS)."""
    today = now.astimezone(CHINA_STANDARD_TIME).date()
    found: list[datetime] = []
    for back in range(LOOKBACK_DAYS + 1):
        day = today - timedelta(days=back)
        due = datetime.combine(day, by, tzinfo=CHINA_STANDARD_TIME)
        if due <= now and _active(day, days, calendar):
            found.append(due)
            if len(found) == 2:
                break
    return found


def _open_time_between(
    platform: ExpectedPlatform, start: datetime, end: datetime, calendar: WorkCalendar, enough: timedelta
) -> timedelta:
    """Opening hours between ``start`` and ``end``, counted back from ``end``; stops once
    over ``enough`` (the answer is then only known to be over it)."""
    assert platform.opens is not None and platform.closes is not None
    total = timedelta()
    if end <= start:
        return total
    first = start.astimezone(CHINA_STANDARD_TIME).date()
    day = end.astimezone(CHINA_STANDARD_TIME).date()
    while day >= first and total <= enough:
        if _active(day, platform.days, calendar):
            opens = datetime.combine(day, platform.opens, tzinfo=CHINA_STANDARD_TIME)
            closes = datetime.combine(day, platform.closes, tzinfo=CHINA_STANDARD_TIME)
            total += max(timedelta(), min(closes, end) - max(opens, start))
        day -= timedelta(days=1)
    return total
