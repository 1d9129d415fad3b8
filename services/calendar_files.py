"""The working-day calendar: the ``chinese-calendar`` package's official schedules, extended
or overridden by ``policy/calendar.yaml`` for years the package does not know yet.

chinese-calendar carries every State Council schedule from 2004 (and raises for years it
lacks); operators add a new year to calendar.yaml the day the notice is published.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from pathlib import Path

from chinese_calendar import constants
from pydantic import BaseModel, ConfigDict

from processors.calendar import WorkCalendar, YearSchedule
from services.policy_files import PolicyError, PolicyProblem, load_model

CALENDAR_FILE = "calendar.yaml"


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
    """Official schedules from the package, with calendar.yaml's years added or replacing them."""
    schedules = package_schedules()
    path = policy_dir / CALENDAR_FILE
    if path.exists():
        configured = load_model(path, CalendarFile)
        for year, official in configured.years.items():
            wrong = [d for d in [*official.holidays, *official.workdays] if d.year != year]
            if wrong:
                message = f"dates outside {year}: {', '.join(d.isoformat() for d in wrong)}"
                raise PolicyError([PolicyProblem(path, 1, f"years.{year}", message)])
            schedules[year] = YearSchedule(year, frozenset(official.holidays), frozenset(official.workdays))
    return WorkCalendar(schedules)
