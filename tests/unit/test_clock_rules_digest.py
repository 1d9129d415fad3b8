"""The digest that decides whether a worker's first tick reviews every open order."""

from __future__ import annotations

from datetime import date

from tests.integration.test_signed_commands import POLICY
from workorder_pipeline.processors.calendar import WorkCalendar, YearSchedule
from workorder_pipeline.services.escalations import clock_rules_digest

CALENDAR = WorkCalendar({2027: YearSchedule(2027, frozenset({date(2027, 2, 8), date(2027, 2, 9)}))})


def test_the_same_rules_give_the_same_digest_in_every_process() -> None:
    rebuilt = WorkCalendar({2027: YearSchedule(2027, frozenset({date(2027, 2, 9), date(2027, 2, 8)}))})
    assert clock_rules_digest(POLICY.deadlines, CALENDAR) == clock_rules_digest(POLICY.deadlines, rebuilt)


def test_a_changed_policy_calendar_or_missing_calendar_changes_the_digest() -> None:
    digests = {
        clock_rules_digest(POLICY.deadlines, CALENDAR),
        clock_rules_digest(POLICY.deadlines.model_copy(update={"reminder_at": 0.5}), CALENDAR),
        clock_rules_digest(POLICY.deadlines, None),
        clock_rules_digest(
            POLICY.deadlines,
            WorkCalendar(
                {2027: YearSchedule(2027, frozenset({date(2027, 2, 8)}), frozenset({date(2027, 2, 6)}))}
            ),
        ),
    }
    assert len(digests) == 4
