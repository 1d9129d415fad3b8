"""Working days on China's official calendar, and deadlines counted in them."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path

import pytest

from workorder_pipeline.processors.calendar import WorkCalendar, YearSchedule
from workorder_pipeline.services.calendar_files import load_calendar, package_schedules
from workorder_pipeline.services.policy_files import PolicyError
from workorder_pipeline.services.policy_set import load_policy_set

CST = timezone(timedelta(hours=8))
ROOT = Path(__file__).resolve().parents[2]
CALENDAR = load_calendar(ROOT / "policy")


def at(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=CST)


def end_of(year: int, month: int, day: int) -> datetime:
    return datetime.combine(date(year, month, day) + timedelta(days=1), time(0), tzinfo=CST)


def test_2024_has_251_working_days_as_the_reference_documents_say() -> None:
    assert CALENDAR.working_days_in(2024) == 251


@pytest.mark.parametrize(
    ("created", "days", "due"),
    [
        # An ordinary week: Monday 10:00 + 3 working days -> end of Thursday.
        pytest.param(at(2026, 11, 16), 3, end_of(2026, 11, 19), id="ordinary-week"),
        # Friday + 1 -> end of Monday: weekends do not count.
        pytest.param(at(2026, 11, 20), 1, end_of(2026, 11, 23), id="over-a-weekend"),
        # National Day 2026: 1-7 Oct off, Saturday 10 Oct worked (调休).
        pytest.param(at(2026, 9, 30), 5, end_of(2026, 10, 13), id="national-day-with-makeup-saturday"),
        # Spring Festival 2026: Saturday 14 Feb worked, 15-23 Feb off.
        pytest.param(at(2026, 2, 13), 5, end_of(2026, 2, 27), id="spring-festival-2026"),
        # Spring Festival 2025: Sunday 26 Jan worked, 28 Jan - 4 Feb off, Saturday 8 Feb worked.
        pytest.param(at(2025, 1, 24), 4, end_of(2025, 2, 6), id="spring-festival-2025"),
    ],
)
def test_deadlines_in_working_days_follow_the_official_calendar(
    created: datetime, days: int, due: datetime
) -> None:
    deadline = CALENDAR.add_working_days(created, days)
    assert deadline.due_at == due
    assert not deadline.provisional


def test_an_order_created_after_the_cutoff_counts_from_the_next_day() -> None:
    before = CALENDAR.add_working_days(at(2026, 11, 16, 16, 59), 1)
    after = CALENDAR.add_working_days(at(2026, 11, 16, 17, 0), 1)
    assert before.due_at == end_of(2026, 11, 17)
    assert after.due_at == end_of(2026, 11, 18)


def test_creation_time_is_read_in_china_time_whatever_offset_it_carries() -> None:
    # 09:30 UTC on Monday is 17:30 in China: after the cut-off.
    created = datetime(2026, 11, 16, 9, 30, tzinfo=UTC)
    assert CALENDAR.add_working_days(created, 1).due_at == end_of(2026, 11, 18)


def test_a_deadline_reaching_into_an_unpublished_year_is_provisional() -> None:
    deadline = CALENDAR.add_working_days(at(2026, 12, 30), 5)
    # 31 Dec, then 1 Jan (fixed-date holiday), 4-7 Jan: provisional weekdays.
    assert deadline.due_at == end_of(2027, 1, 7)
    assert deadline.provisional


def test_publishing_next_years_schedule_recomputes_the_deadline() -> None:
    # Say the State Council makes 4 Jan 2027 a holiday and Saturday 9 Jan a working day.
    official = YearSchedule(
        2027, frozenset({date(2027, 1, 1), date(2027, 1, 4)}), frozenset({date(2027, 1, 9)})
    )
    extended = WorkCalendar({**package_schedules(), 2027: official})
    deadline = extended.add_working_days(at(2026, 12, 30), 5)
    assert deadline.due_at == end_of(2027, 1, 8)
    assert not deadline.provisional


#: A plausible 2027 (the State Council had not published it when this was written).
YEAR_2027 = """years:
  2027:
    holidays: [2027-01-01, 2027-01-04, 2027-02-05, 2027-02-08, 2027-02-09, 2027-02-10, 2027-02-11,
               2027-02-12, 2027-04-05, 2027-05-03, 2027-05-04, 2027-05-05, 2027-06-09, 2027-09-15,
               2027-10-01, 2027-10-04, 2027-10-05, 2027-10-06, 2027-10-07]
    workdays: [2027-01-09, 2027-02-20, 2027-10-09]
"""


def test_a_year_in_calendar_yaml_extends_the_package(tmp_path: Path) -> None:
    (tmp_path / "calendar.yaml").write_text(YEAR_2027, encoding="utf-8")
    calendar = load_calendar(tmp_path)
    assert calendar.has_schedule(2027)
    assert calendar.working_days_in(2027) == 261 - 19 + 3
    assert not calendar.is_working_day(date(2027, 1, 4))
    assert calendar.is_working_day(date(2027, 1, 9))
    assert calendar.working_days_in(2024) == 251  # the package's years are still there


def test_a_misdated_entry_in_calendar_yaml_is_refused(tmp_path: Path) -> None:
    (tmp_path / "calendar.yaml").write_text("years:\n  2027:\n    holidays: [2028-01-01]\n", encoding="utf-8")
    with pytest.raises(PolicyError, match=r"years\.2027\.holidays\.0: 2028-01-01 is not in 2027"):
        load_calendar(tmp_path)


def test_a_bad_date_in_calendar_yaml_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "calendar.yaml").write_text(
        "years:\n  2027:\n    holidays:\n      - 2027-02-30\n", encoding="utf-8"
    )
    with pytest.raises(PolicyError) as error:
        load_calendar(tmp_path)
    assert "calendar.yaml:4:" in str(error.value)


def test_a_limit_below_one_working_day_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        CALENDAR.add_working_days(at(2026, 11, 16), 0)


def test_a_calendar_answers_the_same_whether_it_counted_the_day_before_or_not() -> None:
    # Deadlines are remembered per reference day: a calendar that has answered thousands of
    # questions (across the cut-off, a year-end, an unpublished year) agrees with new ones.
    used = load_calendar(ROOT / "policy")
    start = datetime(2025, 12, 20, 0, 0, tzinfo=CST)
    times = [start + timedelta(hours=7 * step, minutes=step % 60) for step in range(2000)]
    for days in (1, 5, 15):
        warm = [used.add_working_days(created, days) for created in times]
        fresh = [WorkCalendar(used.schedules).add_working_days(created, days) for created in times[::7]]
        assert warm[::7] == fresh
        assert any(d.provisional for d in warm) and not all(d.provisional for d in warm)


@pytest.mark.parametrize(
    ("holidays", "workdays", "line", "field", "message"),
    [
        ("[2027-01-01, 2027-01-10x]", "[]", 3, "years.2027.holidays.1", "invalid datetime separator"),
        ("[2027-01-01, 2027-13-45]", "[]", 3, "years.2027.holidays.1", "month value is outside"),
        ("[2027-01-01, 2027-01-01]", "[]", 3, "years.2027.holidays.1", "2027-01-01 is listed twice"),
        ("[2027-01-01]", "[2027-01-09, 2027-01-09]", 4, "years.2027.workdays.1", "listed twice"),
        ("[2027-01-09]", "[2027-01-09]", 4, "years.2027.workdays.0", "both as a holiday and a workday"),
        ("[2027-01-01]", "[2027-01-06]", 4, "years.2027.workdays.0", "2027-01-06 is a weekday"),
        ("[2027-01-01]", "[]", 3, "years.2027.holidays", "2027 would have 260 working days"),
    ],
    ids=[
        "not-a-date",
        "no-such-month",
        "holiday-twice",
        "workday-twice",
        "both",
        "weekday-workday",
        "implausible",
    ],
)
def test_check_and_run_refuse_an_impossible_calendar_naming_file_line_and_field(
    tmp_path: Path, holidays: str, workdays: str, line: int, field: str, message: str
) -> None:
    policy = tmp_path / "policy"
    shutil.copytree(ROOT / "policy", policy)
    text = f"years:\n  2027:\n    holidays: {holidays}\n    workdays: {workdays}\n"
    (policy / "calendar.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as error:
        load_policy_set(policy)  # what `wo run`, `wo rules check` and `wo rules explain` call
    assert f"calendar.yaml:{line}: {field}: " in str(error.value)
    assert message in str(error.value)


def test_rules_check_prints_the_calendar_problem_and_fails(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "policy", tmp_path / "policy")
    (tmp_path / "policy" / "calendar.yaml").write_text("years:\n  2027:\n    holidays: [2027-13-45]\n")
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "wo"), "rules", "check", str(tmp_path / "policy")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "calendar.yaml:3: years.2027.holidays.0:" in done.stderr
