"""Who is told of what, and when: the notification routes compiled once, quiet hours,
backoff and the notification's identity. Pure: time comes in as an argument.

Routing follows Alertmanager's dispatch/route.go: a depth-first, left-to-right walk of
the tree. A node that matches tries its children; when none of them matches, the node
itself is the match. A matching child without ``continue`` stops its later siblings.
The receivers are those of every match, in order, each once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from workorder_pipeline.schemas.commands import EscalationLevel
from workorder_pipeline.schemas.notifications import (
    Backoff,
    NotificationLevel,
    NotificationPolicy,
    NotifyRoute,
    QuietHours,
)
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.times import CHINA_STANDARD_TIME
from workorder_pipeline.schemas.workorder import Priority


@dataclass(frozen=True, slots=True)
class NotifyEvent:
    """The fields routes match on."""

    unit: str
    level: NotificationLevel
    priority: Priority
    kind: SignalKind


@dataclass(frozen=True, slots=True)
class _Node:
    units: frozenset[str]
    levels: frozenset[NotificationLevel]
    priorities: frozenset[Priority]
    kinds: frozenset[SignalKind]
    receivers: tuple[str, ...]
    continue_: bool
    children: tuple[_Node, ...]

    def matches(self, event: NotifyEvent) -> bool:
        # An empty set matches anything: checked as sets, compiled once.
        return (
            (not self.units or event.unit in self.units)
            and (not self.levels or event.level in self.levels)
            and (not self.priorities or event.priority in self.priorities)
            and (not self.kinds or event.kind in self.kinds)
        )

    def walk(self, event: NotifyEvent) -> Iterator[_Node]:
        matched = False
        for child in self.children:
            if child.matches(event):
                matched = True
                yield from child.walk(event)
                if not child.continue_:
                    break
        if not matched:
            yield self


def _compile(route: NotifyRoute) -> _Node:
    match = route.match
    return _Node(
        frozenset(match.unit),
        frozenset(match.level),
        frozenset(match.priority),
        frozenset(match.kind),
        tuple(route.receivers),
        route.continue_,
        tuple(_compile(child) for child in route.routes),
    )


class NotifyRouter:
    """``policy.route`` compiled once; ``receivers`` for every notification."""

    def __init__(self, policy: NotificationPolicy) -> None:
        self._root = _compile(policy.route)
        self._urgent_levels = frozenset(policy.urgent.levels)
        self._urgent_priorities = frozenset(policy.urgent.priorities)

    def receivers(self, event: NotifyEvent) -> tuple[str, ...]:
        found = (receiver for node in self._root.walk(event) for receiver in node.receivers)
        return tuple(dict.fromkeys(found))

    def urgent(self, event: NotifyEvent) -> bool:
        """Sent through quiet hours: the policy marks its level or its priority urgent."""
        return event.level in self._urgent_levels or event.priority in self._urgent_priorities


def in_quiet_hours(quiet: QuietHours, now: datetime) -> bool:
    local = now.astimezone(CHINA_STANDARD_TIME).time()
    if quiet.start < quiet.end:
        return quiet.start <= local < quiet.end
    return local >= quiet.start or local < quiet.end  # across midnight


def send_after(quiet: QuietHours | None, urgent: bool, now: datetime) -> datetime:
    """When a notification that came due ``now`` may go out: now, or the end of the
    receiver's quiet hours (China time)."""
    if quiet is None or urgent or not in_quiet_hours(quiet, now):
        return now
    local = now.astimezone(CHINA_STANDARD_TIME)
    end = _at(local, quiet.end)
    return end if end > local else end + timedelta(days=1)


def _at(local: datetime, moment: time) -> datetime:
    return local.replace(hour=moment.hour, minute=moment.minute, second=moment.second, microsecond=0)


def retry_delay(backoff: Backoff, failed_attempts: int) -> timedelta:
    """Capped exponential backoff: first, 2x first, 4x first… never above max."""
    exponent = min(max(failed_attempts - 1, 0), 30)
    return timedelta(seconds=min(backoff.first_seconds * 2**exponent, backoff.max_seconds))


def notification_id(order_id: str, level: str, deadline: datetime, receiver: str, round_: int = 0) -> str:
    """The same for the same order, level, deadline, receiver and repeat round: inserted
    once, whichever worker (or restart) plans it."""
    text = f"{order_id}\x1f{level}\x1f{deadline.timestamp():.6f}\x1f{receiver}\x1f{round_}"
    return "n-" + hashlib.sha256(text.encode()).hexdigest()[:32]


#: The notification an escalation (processors.escalation) makes.
ESCALATION_NOTIFIES = {
    EscalationLevel.reminder: NotificationLevel.reminder,
    EscalationLevel.accept_reminder: NotificationLevel.reminder,
    EscalationLevel.overdue: NotificationLevel.overdue,
    EscalationLevel.leadership: NotificationLevel.leadership,
    EscalationLevel.accept_overdue: NotificationLevel.acceptance_overdue,
    EscalationLevel.reroute_overdue: NotificationLevel.leadership,
    EscalationLevel.yellow_card: NotificationLevel.yellow,
    EscalationLevel.red_card: NotificationLevel.red,
    EscalationLevel.rework_escalated: NotificationLevel.leadership,
}
