"""The working-day calendar: the ``chinese-calendar`` package's official schedules, extended
or overridden by ``policy/calendar.yaml`` for years the package does not know yet.

chinese-calendar carries every State Council schedule from 2004 (and raises for years it
lacks); operators add a new year to calendar.yaml the day the notice is published.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

from chinese_calendar import constants
from pydantic import BaseModel, ConfigDict

from workorder_pipeline.processors.calendar import WorkCalendar, YearSchedule
from workorder_pipeline.services.policy_files import PolicyError, PolicyProblem, line_finder, load_model

CALENDAR_FILE = "calendar.yaml"
#: Working days per year in every official schedule 2004-2026: 248-252. A year outside
#: these bounds is a typing error (a missing or extra month of holidays), not a schedule.
PLAUSIBLE_WORKING_DAYS = range(240, 257)


class OfficialYear(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Every holiday date of the year (including those falling on weekends).
    holidays: list[date]
    #: Weekend dates that are working days (调休).
    workdays: list[date] = []


class CalendarFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    years: dict[int, OfficialYear] = {}


def package_schedules() -> dict[int, YearSchedule]:
    holidays: dict[int, set[date]] = defaultdict(set)
    workdays: dict[int, set[date]] = defaultdict(set)
    for day in constants.holidays:
        holidays[day.year].add(day)
    for day in constants.workdays:
        workdays[day.year].add(day)
    return {
        year: YearSchedule(year, frozenset(holidays[year]), frozenset(workdays[year]))
        for year in sorted(set(holidays) | set(workdays))
    }


def load_calendar(policy_dir: Path) -> WorkCalendar:
    """Official schedules from the package, with calendar.yaml's years added or replacing them.

    ``wo run``, ``wo rules check`` and ``wo rules explain`` all load it here: a file one of
    them accepts, all accept. Raises PolicyError naming file, line and field of each problem.
    """
    schedules = package_schedules()
    path = policy_dir / CALENDAR_FILE
    if path.exists():
        configured = load_model(path, CalendarFile)
        line_of = line_finder(path)
        problems = [
            PolicyProblem(
                path, line_of(("years", year, *loc)), ".".join(map(str, ("years", year, *loc))), message
            )
            for year, official in configured.years.items()
            for loc, message in _year_problems(year, official)
        ]
        if problems:
            raise PolicyError(problems)
        for year, official in configured.years.items():
            schedules[year] = YearSchedule(year, frozenset(official.holidays), frozenset(official.workdays))
    return WorkCalendar(schedules)


def _year_problems(year: int, official: OfficialYear) -> list[tuple[tuple[str | int, ...], str]]:
    """What makes a year's schedule impossible: (location in the year, message) each."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for name, days in (("holidays", official.holidays), ("workdays", official.workdays)):
        seen: Counter[date] = Counter()
        for index, day in enumerate(days):
            seen[day] += 1
            if day.year != year:
                problems.append(((name, index), f"{day.isoformat()} is not in {year}"))
            elif seen[day] == 2:
                problems.append(((name, index), f"{day.isoformat()} is listed twice"))
            elif name == "workdays" and day.weekday() < 5:
                problems.append(
                    ((name, index), f"{day.isoformat()} is a weekday: 调休 workdays are weekend days")
                )
    for index, day in enumerate(official.workdays):
        if day in official.holidays:
            problems.append(
                (("workdays", index), f"{day.isoformat()} is listed both as a holiday and a workday")
            )
    if not problems:
        schedule = YearSchedule(year, frozenset(official.holidays), frozenset(official.workdays))
        count = WorkCalendar({year: schedule}).working_days_in(year)
        if count not in PLAUSIBLE_WORKING_DAYS:
            bounds = f"{PLAUSIBLE_WORKING_DAYS.start}-{PLAUSIBLE_WORKING_DAYS.stop - 1}"
            problems.append(
                (("holidays",), f"{year} would have {count} working days; official years have {bounds}")
            )
    return problems
