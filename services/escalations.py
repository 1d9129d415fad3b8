"""Fire the reminders and escalations that came due, and hand over those not yet published."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from processors.calendar import WorkCalendar
from processors.cards import due_cards
from processors.clocks import due_acceptance, due_reroute
from processors.escalation import DueEscalation, due_escalations, recipient
from schemas.commands import EscalationLevel, EscalationMessage
from schemas.policy import Deadlines
from schemas.workflow import AcceptanceLimits, CardLevel, CardRule
from schemas.workorder import Priority, WorkOrderStatus
from storage.clock_orders import orders_on_the_clock
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


def fire_workflow_clocks(
    repository: WorkOrderRepository,
    deadlines: Deadlines,
    calendar: WorkCalendar,
    now: datetime,
) -> int:
    """Record the acceptance reminders and escalations, the command center's re-route
    escalations and the yellow and red cards due by ``now``, each once per order, level and
    the deadline it is about: the escalation table's key is the set already fired. (An order
    reworked the policy's number of times, 提级督办, is escalated by the command that sent
    it back, in its own transaction: services.commands.)"""
    acceptance = deadlines.acceptance
    remind = timedelta(hours=acceptance.remind_before_hours if acceptance else 0)
    horizon = _card_horizon(deadlines, calendar, now)
    fired = 0

    def cards(order: Any) -> tuple[CardRule, ...]:
        return deadlines.cards_for(Priority(order["priority"]))

    for orders in orders_on_the_clock(repository.engine, horizon, now + remind):
        rows = []
        for order in orders:
            status, unit = WorkOrderStatus(order["status"]), order["unit"]
            keyed = [
                (due, order["accept_due_at"]) for due in _acceptance(status, unit, order, acceptance, now)
            ]
            keyed += [
                (due, due.at)
                for due in due_reroute(status, unit, order["returned_at"], deadlines.reroute, calendar, now)
            ]
            if order["due_at"] <= horizon:  # a candidate for another clock only: no card yet
                keyed += [
                    (DueEscalation(_CARD_LEVELS[card.level], unit, card.at), card.due_at)
                    for card in due_cards(status, order["due_at"], cards(order), calendar, now)
                ]
            rows += [
                {"work_order_id": order["id"], "level": due.level.value, "due_at": key, "unit": unit}
                for due, key in keyed
            ]
        fired += repository.record_escalations(rows, now)
    return fired


_CARD_LEVELS = {CardLevel.yellow: EscalationLevel.yellow_card, CardLevel.red: EscalationLevel.red_card}


def _acceptance(
    status: WorkOrderStatus, unit: str, order: Any, acceptance: AcceptanceLimits | None, now: datetime
) -> list[DueEscalation]:
    return due_acceptance(status, unit, order["accept_due_at"], acceptance, now) if acceptance else []


def _card_horizon(deadlines: Deadlines, calendar: WorkCalendar, now: datetime) -> datetime:
    """The latest due_at whose earliest card may have come due by ``now`` (a card N working
    days before due_at is due by now when due_at is at most N working days after now), plus a
    day: the database narrows, the rules decide exactly."""
    latest = now
    for rule in deadlines.all_cards():
        if rule.working_days_before is not None:
            latest = max(latest, calendar.shift_working_days(now, rule.working_days_before).due_at)
        elif rule.hours_before is not None:
            latest = max(latest, now + timedelta(hours=rule.hours_before))
    return latest + timedelta(days=1)


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
    """The escalation service the worker's timer drives. Given the calendar, the workflow's
    clocks (acceptance, re-route, cards) fire too."""

    def __init__(
        self,
        repository: WorkOrderRepository,
        deadlines: Deadlines,
        calendar: WorkCalendar | None = None,
    ) -> None:
        self._repository = repository
        self._deadlines = deadlines
        self._calendar = calendar

    def fire(self, now: datetime) -> int:
        fired = fire_due_escalations(self._repository, self._deadlines, now)
        if self._calendar is not None:
            fired += fire_workflow_clocks(self._repository, self._deadlines, self._calendar, now)
        return fired

    def pending(self) -> list[EscalationMessage]:
        return pending_messages(self._repository)

    def published(self, messages: list[EscalationMessage], now: datetime) -> None:
        self._repository.mark_escalations_published([m.escalation_id for m in messages], now)
