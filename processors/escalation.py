"""Reminders and escalations: which are due for an order at a given time.

- reminder: to the order's unit when ``reminder_at`` of the allowed time has passed;
- overdue (督办, level 1): to the command center once the order is past its due_at;
- leadership (挂牌督办, level 2): once it is overdue by more than the policy's grace.

Each fires once per order and deadline (an extension starts them afresh). All that came
due are returned, so a worker that was down fires them when it is back. The clock stops
while an order is returned to the command center, so a returned order escalates nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from workorder_pipeline.schemas.commands import EscalationLevel
from workorder_pipeline.schemas.policy import Deadlines
from workorder_pipeline.schemas.workorder import COMMAND_CENTER, WorkOrderStatus

LEADERSHIP = "leadership"
#: Statuses whose clock runs: dispatched to a unit and not yet closed.
RUNNING = frozenset(
    {
        WorkOrderStatus.dispatched,
        WorkOrderStatus.accepted,
        WorkOrderStatus.in_progress,
        WorkOrderStatus.feedback_submitted,
    }
)


@dataclass(frozen=True, slots=True)
class DueEscalation:
    level: EscalationLevel
    recipient: str
    #: When it came due.
    at: datetime


def recipient(level: EscalationLevel, unit: str) -> str:
    """Who is told: the unit is reminded; overdue goes to the command center, then leadership."""
    return {
        EscalationLevel.reminder: unit,
        EscalationLevel.overdue: COMMAND_CENTER,
        EscalationLevel.leadership: LEADERSHIP,
        EscalationLevel.accept_reminder: unit,
        EscalationLevel.accept_overdue: COMMAND_CENTER,
        EscalationLevel.reroute_overdue: LEADERSHIP,
        EscalationLevel.yellow_card: unit,
        EscalationLevel.red_card: unit,
        EscalationLevel.rework_escalated: LEADERSHIP,
    }[level]


def due_escalations(
    status: WorkOrderStatus,
    unit: str,
    created_at: datetime,
    due_at: datetime,
    deadlines: Deadlines,
    now: datetime,
) -> list[DueEscalation]:
    if status not in RUNNING:
        return []
    remind = created_at + (due_at - created_at) * deadlines.reminder_at
    leadership = due_at + timedelta(hours=deadlines.escalation_grace_hours)
    schedule = [
        DueEscalation(level, recipient(level, unit), at)
        for level, at in (
            (EscalationLevel.reminder, remind),
            (EscalationLevel.overdue, due_at),
            (EscalationLevel.leadership, leadership),
        )
    ]
    return [item for item in schedule if item.at <= now]
