"""Working days on China's official calendar, and deadlines counted in them.

A year's official schedule (the State Council's notice: holidays, and weekend days made
working days, 调休) comes in as data (``YearSchedule``). For a year with no schedule yet,
days are counted provisionally: Monday to Friday are working days except the fixed-date
statutory holidays (1 January, 1 May, 1-3 October). Lunar holidays (Spring Festival,
Qingming, Dragon Boat, Mid-Autumn) cannot be known then, so a provisional deadline may
be too early, never too late; it is marked provisional and recomputed when the schedule
is loaded.

Counting convention (documented in README "Deadlines"):

- Days are China Standard Time (UTC+8) calendar days.
- The reference day is the day the order was created; an order created at or after the
  cut-off time (default 17:00) counts as created the next day.
- Day 1 is the first working day after the reference day; the order is due at the end
  (24:00) of working day N.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from workorder_pipeline.schemas.times import CHINA_STANDARD_TIME

DEFAULT_CUTOFF = time(17, 0)
#: Statutory holidays on fixed Gregorian dates: the provisional calendar knows only these.
FIXED_DATE_HOLIDAYS = frozenset({(1, 1), (5, 1), (10, 1), (10, 2), (10, 3)})


@dataclass(frozen=True, slots=True)
class YearSchedule:
    year: int
    holidays: frozenset[date]
    #: Weekend days that are working days (调休).
    workdays: frozenset[date] = frozenset()


@dataclass(frozen=True, slots=True)
class Deadline:
    due_at: datetime
    #: True when a day counted lies in a year with no official schedule yet.
    provisional: bool


@dataclass(frozen=True)
class WorkCalendar:
    schedules: Mapping[int, YearSchedule] = field(default_factory=dict)
    #: (reference day, days) -> deadline: every order of a batch asks the same question,
    #: and a year holds a few hundred reference days (the walk was ~5% of the intake's CPU).
    _counted: dict[tuple[date, int], Deadline] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def has_schedule(self, year: int) -> bool:
        return year in self.schedules

    def is_working_day(self, day: date) -> bool:
        schedule = self.schedules.get(day.year)
        if schedule is None:
            return day.weekday() < 5 and (day.month, day.day) not in FIXED_DATE_HOLIDAYS
        return day in schedule.workdays or (day.weekday() < 5 and day not in schedule.holidays)

    def add_working_days(self, created_at: datetime, days: int, cutoff: time = DEFAULT_CUTOFF) -> Deadline:
        """The end of the ``days``-th working day after ``created_at`` (see the module's convention)."""
        if days < 1:
            raise ValueError("a limit in working days is at least 1 day")
        local = created_at.astimezone(CHINA_STANDARD_TIME)
        reference = local.date() + (timedelta(days=1) if local.time() >= cutoff else timedelta())
        found = self._counted.get((reference, days))
        if found is None:
            if len(self._counted) >= 4096:  # years of reference days: start over rather than grow
                self._counted.clear()
            found = self._counted[(reference, days)] = self._count(reference, days)
        return found

    def _count(self, reference: date, days: int) -> Deadline:
        day, provisional, counted = reference, False, 0
        while counted < days:
            day += timedelta(days=1)
            provisional = provisional or not self.has_schedule(day.year)
            if self.is_working_day(day):
                counted += 1
        end = datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=CHINA_STANDARD_TIME)
        return Deadline(end, provisional)

    def shift_working_days(self, moment: datetime, days: int) -> Deadline:
        """``moment`` moved by ``days`` working days (negative: earlier) at the same China
        clock time; a moment at 00:00 is the end (24:00) of the day before. Extending a
        deadline by N working days, or a card N working days before it."""
        day, clock = _day_and_clock(moment)
        day, provisional = self._walk(day, days)
        return Deadline(datetime.combine(day, time(0, 0), tzinfo=CHINA_STANDARD_TIME) + clock, provisional)

    def working_day_start_after(self, moment: datetime, days: int) -> Deadline:
        """The start (00:00 China time) of the ``days``-th working day after the day of
        ``moment`` (a moment at 00:00 belongs to the day before): "on the first working day after"."""
        if days < 1:
            raise ValueError("count at least 1 working day")
        day, provisional = self._walk(_day_and_clock(moment)[0], days)
        return Deadline(datetime.combine(day, time(0, 0), tzinfo=CHINA_STANDARD_TIME), provisional)

    def _walk(self, day: date, days: int) -> tuple[date, bool]:
        step, provisional, counted = timedelta(days=1 if days > 0 else -1), False, 0
        while counted < abs(days):
            day += step
            provisional = provisional or not self.has_schedule(day.year)
            if self.is_working_day(day):
                counted += 1
        return day, provisional

    def working_days_in(self, year: int) -> int:
        start = date(year, 1, 1)
        return sum(
            self.is_working_day(start + timedelta(days=offset))
            for offset in range((date(year + 1, 1, 1) - start).days)
        )


def _day_and_clock(moment: datetime) -> tuple[date, timedelta]:
    """The China calendar day a moment falls in and its time into that day; 00:00 is 24:00
    of the day before (a deadline at the end of a day belongs to that day)."""
    local = moment.astimezone(CHINA_STANDARD_TIME)
    clock = local - datetime.combine(local.date(), time(0, 0), tzinfo=CHINA_STANDARD_TIME)
    if clock == timedelta(0):
        return local.date() - timedelta(days=1), timedelta(days=1)
    return local.date(), clock
