"""Fire the reminders and escalations that came due, and hand over those not yet published."""

from __future__ import annotations

import hashlib
import inspect
import os
from collections.abc import Mapping
from datetime import datetime
from types import ModuleType
from typing import Any

from workorder_pipeline.processors import calendar as calendar_rules
from workorder_pipeline.processors import cards, clocks, escalation, next_check
from workorder_pipeline.processors.calendar import WorkCalendar
from workorder_pipeline.processors.cards import due_cards
from workorder_pipeline.processors.clocks import due_acceptance, due_reroute
from workorder_pipeline.processors.escalation import DueEscalation, due_escalations, recipient
from workorder_pipeline.processors.next_check import OrderClocks, next_check_at
from workorder_pipeline.schemas.commands import EscalationLevel, EscalationMessage
from workorder_pipeline.schemas.policy import Deadlines
from workorder_pipeline.schemas.workflow import CardLevel
from workorder_pipeline.schemas.workorder import Priority, WorkOrderStatus
from workorder_pipeline.storage.repository import WorkOrderRepository


def fire_due(
    repository: WorkOrderRepository,
    deadlines: Deadlines,
    now: datetime,
    calendar: WorkCalendar | None = None,
    every_open: bool = False,
) -> int:
    """Record every reminder and escalation due by ``now`` that is not recorded yet (each
    fires once per order, level and the deadline it is about: the escalation table's key is
    the set already fired), for the orders whose next check came (``every_open``: every open
    order); then store when each must be looked at next. Given the calendar, the workflow's
    clocks too: acceptance, the command center's re-route and the yellow and red cards (an
    order reworked the policy's number of times, 提级督办, is escalated by the command that
    sent it back, in its own transaction: services.commands). Returns how many fired."""
    fired = 0
    for orders in repository.orders_to_check(now, every_open):
        rows = [row for order in orders for row in _due_rows(order, deadlines, calendar, now)]
        fired += repository.record_escalations(rows, now)
        # After the recording: a crash in between leaves the orders due, checked again.
        repository.set_next_checks(
            [(order, next_check_at(_clocks(order), deadlines, calendar, now)) for order in orders]
        )
    return fired


def _clocks(order: Mapping[str, Any]) -> OrderClocks:
    return OrderClocks(
        WorkOrderStatus(order["status"]),
        order["unit"],
        order["created_at"],
        order["due_at"],
        order["accept_due_at"],
        order["returned_at"],
        Priority(order["priority"]),
    )


def _due_rows(
    order: Mapping[str, Any],
    deadlines: Deadlines,
    calendar: WorkCalendar | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """The escalation rows due by ``now`` for ``order``, each keyed by the deadline it is about."""
    status, unit, due_at = WorkOrderStatus(order["status"]), order["unit"], order["due_at"]
    keyed = [
        (due, due_at) for due in due_escalations(status, unit, order["created_at"], due_at, deadlines, now)
    ]
    if calendar is not None:
        if deadlines.acceptance is not None:
            accept_due = order["accept_due_at"]
            keyed += [
                (due, accept_due)
                for due in due_acceptance(status, unit, accept_due, deadlines.acceptance, now)
            ]
        keyed += [
            (due, due.at)
            for due in due_reroute(status, unit, order["returned_at"], deadlines.reroute, calendar, now)
        ]
        keyed += [
            (DueEscalation(_CARD_LEVELS[card.level], unit, card.at), card.due_at)
            for card in due_cards(
                status, due_at, deadlines.cards_for(Priority(order["priority"])), calendar, now
            )
        ]
    return [
        {"work_order_id": order["id"], "level": due.level.value, "due_at": key, "unit": unit}
        for due, key in keyed
    ]


_CARD_LEVELS = {CardLevel.yellow: EscalationLevel.yellow_card, CardLevel.red: EscalationLevel.red_card}


#: The code an order's next check follows: a change to any of it is a change of the rules.
_CLOCK_CODE: tuple[ModuleType, ...] = (calendar_rules, cards, clocks, escalation, next_check)


def clock_rules_digest(deadlines: Deadlines, calendar: WorkCalendar | None) -> str:
    """What the stored next checks depend on, as one SHA-256: the deadlines policy, the
    calendar's schedules and the source of the modules that compute the clocks."""
    rules = hashlib.sha256(deadlines.model_dump_json().encode())
    if calendar is not None:
        for year, schedule in sorted(calendar.schedules.items()):
            days = (sorted(schedule.holidays), sorted(schedule.workdays))
            rules.update(f"{year}:{days}".encode())
    else:
        rules.update(b"no calendar")
    for module in _CLOCK_CODE:
        try:
            rules.update(inspect.getsource(module).encode())
        except OSError:  # installed without its source: the code is unknown, review each time
            rules.update(os.urandom(16))
    return rules.hexdigest()


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
        self._reviewed = False
        self.rules_digest = clock_rules_digest(deadlines, calendar)

    def fire(self, now: datetime) -> int:
        """Looks at the orders whose next check came; the first check of a process at every
        open order when the clock rules differ from those of the last complete review (the
        policy, the calendar or the clocks' code changed since the next checks were stored).
        The review is recorded once it is complete: one cut short is made again."""
        review = not self._reviewed and self._repository.reviewed_clock_rules() != self.rules_digest
        fired = fire_due(self._repository, self._deadlines, now, self._calendar, review)
        if review:
            self._repository.record_clock_review(self.rules_digest, now)
        self._reviewed = True
        return fired

    def pending(self) -> list[EscalationMessage]:
        return pending_messages(self._repository)

    def published(self, messages: list[EscalationMessage], now: datetime) -> None:
        self._repository.mark_escalations_published([m.escalation_id for m in messages], now)
