"""Fire the reminders and escalations that came due, and hand over those not yet published."""

from __future__ import annotations

from datetime import datetime

from processors.escalation import due_escalations, recipient
from schemas.commands import EscalationLevel, EscalationMessage
from schemas.policy import Deadlines
from schemas.workorder import WorkOrderStatus
from storage.repository import WorkOrderRepository


def fire_due_escalations(repository: WorkOrderRepository, deadlines: Deadlines, now: datetime) -> int:
    """Record every reminder and escalation due by ``now`` that is not recorded yet (each
    fires once per order, level and deadline). Returns how many fired."""
    fired = 0
    for orders in repository.running_orders(reminded_by=now, reminder_at=deadlines.reminder_at):
        rows = [
            {
                "work_order_id": order["id"],
                "level": due.level.value,
                "due_at": order["due_at"],
                "unit": order["unit"],
            }
            for order in orders
            for due in due_escalations(
                WorkOrderStatus(order["status"]),
                order["unit"],
                order["created_at"],
                order["due_at"],
                deadlines,
                now,
            )
        ]
        fired += repository.record_escalations(rows, now)
    return fired


def pending_messages(repository: WorkOrderRepository) -> list[EscalationMessage]:
    """Escalations recorded but not yet published (published, then marked: at least once)."""
    messages = []
    for row in repository.unpublished_escalations():
        overdue = (row["fired_at"] - row["due_at"]).total_seconds()
        messages.append(
            EscalationMessage(
                escalation_id=row["id"],
                work_order_id=row["work_order_id"],
                level=row["level"],
                recipient=recipient(EscalationLevel(row["level"]), row["unit"]),
                unit=row["unit"],
                kind=row["kind"],
                priority=row["priority"],
                due_at=row["due_at"],
                fired_at=row["fired_at"],
                overdue_seconds=max(0, int(overdue)),
            )
        )
    return messages


class Escalations:
    """The escalation service the worker's timer drives."""

    def __init__(self, repository: WorkOrderRepository, deadlines: Deadlines) -> None:
        self._repository = repository
        self._deadlines = deadlines

    def fire(self, now: datetime) -> int:
        return fire_due_escalations(self._repository, self._deadlines, now)

    def pending(self) -> list[EscalationMessage]:
        return pending_messages(self._repository)

    def published(self, messages: list[EscalationMessage], now: datetime) -> None:
        self._repository.mark_escalations_published([m.escalation_id for m in messages], now)
