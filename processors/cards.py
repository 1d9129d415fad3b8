"""Yellow and red cards (黄牌/红牌): warnings relative to an order's due_at, beside the
percentage reminder of processors/escalation.py.

The policy places each level in working days or hours before or after due_at (see
schemas/workflow.CardRule). A card fires once per order, level and deadline: the caller
passes the (level, due_at) pairs already fired, and an extension (a new due_at) makes the
cards due afresh. Cards fire only while the order's clock runs; all that came due are
returned, so a worker that was down fires them when it is back. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from dataclasses import dataclass
from datetime import datetime, timedelta

from workorder_pipeline.processors.calendar import WorkCalendar
from workorder_pipeline.processors.escalation import RUNNING
from workorder_pipeline.schemas.workflow import CardLevel, CardRule
from workorder_pipeline.schemas.workorder import WorkOrderStatus


@dataclass(frozen=True, slots=True)
class Card:
    level: CardLevel
    #: The deadline it warns about.
    due_at: datetime
    #: When it came due.
    at: datetime


def card_time(rule: CardRule, due_at: datetime, calendar: WorkCalendar) -> datetime:
    """When ``rule``'s card comes due for an order due at ``due_at``."""
    if rule.hours_before is not None:
        return due_at - timedelta(hours=rule.hours_before)
    if rule.hours_after is not None:
        return due_at + timedelta(hours=rule.hours_after)
    if rule.working_days_before is not None:
        return calendar.shift_working_days(due_at, -rule.working_days_before).due_at
    assert rule.working_days_after is not None
    return calendar.working_day_start_after(due_at, rule.working_days_after).due_at


def due_cards(
    status: WorkOrderStatus,
    due_at: datetime,
    rules: Iterable[CardRule],
    calendar: WorkCalendar,
    now: datetime,
    fired: Set[tuple[CardLevel, datetime]] = frozenset(),
) -> list[Card]:
    """The cards to fire now: due by ``now``, for this deadline, not fired before."""
    if status not in RUNNING:
        return []
    cards = [Card(rule.level, due_at, card_time(rule, due_at, calendar)) for rule in rules]
    return [card for card in cards if card.at <= now and (card.level, due_at) not in fired]
