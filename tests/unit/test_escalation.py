"""Reminders and escalations come due at the policy's times, and only while the clock runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workorder_pipeline.processors.escalation import LEADERSHIP, due_escalations
from workorder_pipeline.schemas.commands import EscalationLevel
from workorder_pipeline.schemas.policy import Deadlines, TimeLimit
from workorder_pipeline.schemas.workorder import COMMAND_CENTER, Priority, WorkOrderStatus

CREATED = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
DUE = CREATED + timedelta(hours=100)
POLICY = Deadlines(
    default={p: TimeLimit(hours=100) for p in Priority},
    reminder_at=0.75,
    escalation_grace_hours=24,
    cards=(),  # cards are tests/unit/test_cards.py's
)


def levels(now: datetime, status: WorkOrderStatus = WorkOrderStatus.accepted) -> list[EscalationLevel]:
    return [due.level for due in due_escalations(status, "squad-2", CREATED, DUE, POLICY, now)]


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        pytest.param(74.99, [], id="before-75pct"),
        pytest.param(75, [EscalationLevel.reminder], id="reminder-at-75pct"),
        pytest.param(99.9, [EscalationLevel.reminder], id="still-only-reminder"),
        pytest.param(100, [EscalationLevel.reminder, EscalationLevel.overdue], id="overdue-at-due"),
        pytest.param(123.9, [EscalationLevel.reminder, EscalationLevel.overdue], id="within-grace"),
        pytest.param(
            124,
            [EscalationLevel.reminder, EscalationLevel.overdue, EscalationLevel.leadership],
            id="leadership-after-grace",
        ),
    ],
)
def test_escalations_come_due_at_the_policy_times(hours: float, expected: list[EscalationLevel]) -> None:
    assert levels(CREATED + timedelta(hours=hours)) == expected


def test_each_level_goes_to_its_recipient() -> None:
    due = due_escalations(
        WorkOrderStatus.in_progress, "squad-2", CREATED, DUE, POLICY, DUE + timedelta(days=2)
    )
    assert [(d.level, d.recipient) for d in due] == [
        (EscalationLevel.reminder, "squad-2"),
        (EscalationLevel.overdue, COMMAND_CENTER),
        (EscalationLevel.leadership, LEADERSHIP),
    ]
    assert [d.at for d in due] == [CREATED + timedelta(hours=75), DUE, DUE + timedelta(hours=24)]


@pytest.mark.parametrize(
    "status", [WorkOrderStatus.registered, WorkOrderStatus.returned, WorkOrderStatus.closed], ids=str
)
def test_nothing_escalates_while_the_clock_is_stopped(status: WorkOrderStatus) -> None:
    assert levels(DUE + timedelta(days=10), status) == []
