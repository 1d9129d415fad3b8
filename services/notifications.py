"""Notifications: planned from the escalations recorded (and repeated while the order
stays unresolved), sent by the leader through each receiver's channel, every attempt
recorded, retried with capped backoff, and after the policy's attempts marked failed and
escalated to the command center's receiver.

Delivery is at least once per receiver: a notification's id is derived from its order,
level, deadline, receiver and round, so planning twice (two workers, a restart) inserts
it once; sending is leased (storage/notifications.py). The window for a repeat is a
worker killed after the platform accepted the message and before the result was
recorded: the lease expires and it is sent again (README, "Notifications")."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from workorder_pipeline.processors.notify_content import (
    NotificationText,
    NotifyOrder,
    render,
    render_decision,
    render_failure,
)
from workorder_pipeline.processors.notify_routing import (
    ESCALATION_NOTIFIES,
    NotifyEvent,
    NotifyRouter,
    notification_id,
    retry_delay,
    send_after,
)
from workorder_pipeline.schemas.commands import EscalationLevel, LifecycleEventName
from workorder_pipeline.schemas.notifications import (
    AttemptOutcome,
    ChannelType,
    NotificationLevel,
    NotificationPolicy,
    NotificationStatus,
    Receiver,
)
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import Priority
from workorder_pipeline.storage.notifications import RUNNING_STATUSES, NotificationStore

log = structlog.get_logger(__name__)

#: New urgent orders are looked for among those dispatched this long ago at most: a worker
#: down longer does not tell of orders that are a day old.
NEW_ORDER_WINDOW = timedelta(hours=24)
#: Extension decisions likewise: one a worker down longer missed is not told late.
DECISION_WINDOW = timedelta(hours=24)
#: Notifications sent per run at most: the periodic job comes back for the rest.
PER_RUN = 200
#: How long a worker holds a notification it is sending: a channel's whole send ends within
#: it (Outgoing.lease_ends), its result recorded before another worker may claim it.
LEASE = timedelta(minutes=2)


async def _nobody_recorded(_: str) -> None:
    return None


def recipient_key(address: str) -> str:
    """How a recipient of a receiver that is several (an SMS phone) is recorded as having
    a notification: a digest, so the table holds no phone."""
    return hashlib.sha256(address.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Outgoing:
    notification_id: str
    work_order_id: str
    level: NotificationLevel
    receiver: Receiver
    text: NotificationText
    #: When (time.monotonic) this worker's lease of it ends: the channel's whole send ends
    #: before, or another worker may send it again (streams/channels/deadline.py).
    lease_ends: float
    #: Recipients (recipient_key) that have it from an earlier attempt: not sent to again.
    already: frozenset[str] = frozenset()
    #: Records a recipient that took it, before the next one is sent (committed at once).
    delivered: Callable[[str], Awaitable[None]] = _nobody_recorded


@dataclass(frozen=True, slots=True)
class Receipt:
    outcome: AttemptOutcome
    #: HTTP status, the platform's errcode or the SMTP reply code.
    code: str | None = None
    detail: str = ""


class Channel(Protocol):
    """A transport (streams/channels): sends, never raises; says what happened."""

    async def send(self, message: Outgoing) -> Receipt: ...


@dataclass(frozen=True, slots=True)
class Sent:
    """One attempt's result, for the metrics."""

    channel: ChannelType
    outcome: AttemptOutcome


class Notifier:
    def __init__(
        self,
        store: NotificationStore,
        policy: NotificationPolicy,
        router: NotifyRouter,
        channels: Mapping[ChannelType, Channel],
        unit_names: Mapping[str, str],
        lease: timedelta = LEASE,
    ) -> None:
        self._store = store
        self._lease = lease
        self._policy = policy
        self._router = router
        self._channels = channels
        self._unit_names = unit_names

    def plan(self, now: datetime) -> int:
        """Notifications for the escalations recorded since the last plan, and repeats of
        what stays unresolved. Returns how many are new."""
        escalations = self._store.unnotified_escalations()
        # An order resolved since its escalation fired (the worker was down) needs no notice.
        rows = [
            row
            for escalation in escalations
            if escalation["status"] in RUNNING_STATUSES
            for row in self._for_escalation(escalation, now)
        ]
        new = self._store.plan(rows, [e["id"] for e in escalations], now)
        return new + self._plan_new_orders(now) + self._plan_decisions(now) + self._plan_repeats(now)

    def _plan_new_orders(self, now: datetime) -> int:
        """A new urgent order (of a priority the policy marks urgent), once per receiver."""
        priorities = [p.value for p in self._policy.urgent.priorities]
        if not priorities:
            return 0
        rows = []
        for order in self._store.new_orders_unnotified(now - NEW_ORDER_WINDOW, priorities):
            level = NotificationLevel.new_urgent_order
            event = NotifyEvent(order["unit"], level, Priority(order["priority"]), SignalKind(order["kind"]))
            rows += [
                self._row(order["work_order_id"], level, order["due_at"], receiver, True, now)
                for receiver in self._router.receivers(event)
            ]
        return self._store.insert(rows)

    def _plan_decisions(self, now: datetime) -> int:
        """An extension approved or rejected, once per receiver: the notification's deadline
        is the decision's moment, so each decision has ids of its own."""
        rows = []
        level = NotificationLevel.extension_decided
        for decision in self._store.decisions_unnotified(now - DECISION_WINDOW):
            kind, priority = SignalKind(decision["kind"]), Priority(decision["priority"])
            event = NotifyEvent(decision["unit"], level, priority, kind)
            urgent = self._router.urgent(event)
            rows += [
                self._row(decision["work_order_id"], level, decision["at"], receiver, urgent, now)
                for receiver in self._router.receivers(event)
            ]
        return self._store.insert(rows)

    def _for_escalation(self, escalation: Mapping[str, Any], now: datetime) -> list[dict[str, Any]]:
        level = ESCALATION_NOTIFIES[EscalationLevel(escalation["level"])]
        event = NotifyEvent(
            escalation["unit"], level, Priority(escalation["priority"]), SignalKind(escalation["kind"])
        )
        urgent = self._router.urgent(event)
        return [
            self._row(escalation["work_order_id"], level, escalation["due_at"], receiver, urgent, now)
            for receiver in self._router.receivers(event)
        ]

    def _row(
        self,
        order_id: str,
        level: NotificationLevel,
        deadline: datetime,
        receiver_id: str,
        urgent: bool,
        now: datetime,
        round_: int = 0,
        about: str | None = None,
    ) -> dict[str, Any]:
        receiver = self._policy.receiver(receiver_id)
        return {
            "id": notification_id(order_id, level.value, deadline, receiver_id, round_),
            "work_order_id": order_id,
            "level": level.value,
            "deadline": deadline,
            "receiver": receiver_id,
            "channel": receiver.via.channel.value,
            "round": round_,
            "status": NotificationStatus.pending.value,
            "urgent": urgent,
            "created_at": now,
            "send_after": send_after(receiver.quiet_hours, urgent, now),
            "attempts": 0,
            "about": about,
        }

    def _plan_repeats(self, now: datetime) -> int:
        every = self._policy.repeat_every_minutes
        if every is None or self._policy.repeat_at_most == 0:
            return 0
        rows = []
        known = {r.id for r in self._policy.receivers}
        for sent in self._store.unresolved_sent(now - timedelta(minutes=every), self._policy.repeat_at_most):
            if sent["receiver"] not in known:
                continue  # the receiver left the policy
            level = NotificationLevel(sent["level"])
            args = (sent["work_order_id"], level, sent["deadline"], sent["receiver"], sent["urgent"], now)
            rows.append(self._row(*args, round_=sent["round"] + 1))
        return self._store.insert(rows)

    async def deliver(self, clock: Callable[[], datetime]) -> list[Sent]:
        """Send what is due, each through its receiver's channel, claiming one at a time:
        a slow platform never lets the lease of a notification still waiting expire, and a
        worker killed mid-send holds only the one in flight."""
        results: list[Sent] = []
        for _ in range(PER_RUN):
            # Read before the claim: the lease as this worker counts it ends no later.
            lease_ends = time.monotonic() + self._lease.total_seconds()
            claimed = await asyncio.to_thread(self._store.claim, clock(), self._lease, 1)
            if not claimed:
                break
            results += await self._attempt(claimed[0], clock, lease_ends)
        return results

    async def run(self, clock: Callable[[], datetime]) -> list[Sent]:
        """Plan, then send what is due (the leader's periodic job)."""
        planned = await asyncio.to_thread(self.plan, clock())
        if planned:
            log.info("notifications_planned", count=planned)
        return await self.deliver(clock)

    async def _attempt(
        self, row: dict[str, Any], clock: Callable[[], datetime], lease_ends: float
    ) -> list[Sent]:
        channel_type = ChannelType(row["channel"])
        known = {r.id for r in self._policy.receivers}
        if row["receiver"] not in known:
            receipt = Receipt(AttemptOutcome.misconfigured, None, "receiver no longer in the policy")
        else:
            already = await asyncio.to_thread(self._store.delivered_recipients, row["id"])

            async def delivered(recipient: str) -> None:
                record = self._store.record_recipient
                await asyncio.to_thread(record, row["id"], recipient, row["attempts"], clock())

            message = Outgoing(
                row["id"],
                row["work_order_id"],
                NotificationLevel(row["level"]),
                self._policy.receiver(row["receiver"]),
                self._text(row, clock()),
                lease_ends,
                already,
                delivered,
            )
            receipt = await self._send(channel_type, message)
        now = clock()
        changes, follow_up = self._after(row, receipt, now)
        await asyncio.to_thread(
            self._store.finish, row, receipt.outcome, receipt.code, receipt.detail, now, changes, follow_up
        )
        log.info(
            "notification_attempt",
            notification_id=row["id"],
            channel=channel_type.value,
            receiver=row["receiver"],
            attempt=row["attempts"],
            outcome=receipt.outcome.value,
            code=receipt.code,
        )
        sent = [Sent(channel_type, receipt.outcome)]
        if changes.get("status") == NotificationStatus.failed.value:
            sent.append(Sent(channel_type, AttemptOutcome.gave_up))
        return sent

    async def _send(self, channel_type: ChannelType, message: Outgoing) -> Receipt:
        channel = self._channels.get(channel_type)
        if channel is None:
            return Receipt(AttemptOutcome.misconfigured)
        try:
            return await channel.send(message)
        except Exception as exc:  # a channel's bug: recorded as a failed attempt, not a stuck lease
            log.error("notification_channel_failed", channel=channel_type.value, error=type(exc).__name__)
            return Receipt(AttemptOutcome.unreachable, None, type(exc).__name__)

    def _text(self, row: Mapping[str, Any], now: datetime) -> NotificationText:
        level = NotificationLevel(row["level"])
        if level is NotificationLevel.delivery_failed:
            about = NotificationLevel(row.get("about_level") or NotificationLevel.overdue)
            receiver = row.get("about_receiver") or "?"
            return render_failure(
                about, row["work_order_id"], receiver, self._policy.attempts, self._policy.console_url
            )
        order = NotifyOrder(
            row["work_order_id"],
            SignalKind(row["kind"]),
            self._unit_names.get(row["unit"], row["unit"]),
            row["order_due_at"],
            row["plate"],
        )
        if level is NotificationLevel.extension_decided:
            approved = row["decision"] == LifecycleEventName.extension_approved
            moved = replace(order, due_at=row["decided_due_at"] or order.due_at) if approved else order
            return render_decision(approved, moved, self._policy.console_url, now, self._policy.show_plate)
        return render(level, order, self._policy.console_url, now, self._policy.show_plate)

    def _after(
        self, row: Mapping[str, Any], receipt: Receipt, now: datetime
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The notification's new state after an attempt, and the command center's notice
        when the attempts ran out."""
        if receipt.outcome is AttemptOutcome.delivered:
            return {"status": NotificationStatus.sent.value, "sent_at": now}, []
        if row["attempts"] < self._policy.attempts:
            return {"send_after": now + retry_delay(self._policy.backoff, row["attempts"])}, []
        failed = {"status": NotificationStatus.failed.value, "failed_at": now}
        cc = self._policy.command_center_receiver
        if cc is None or row["receiver"] == cc or row["level"] == NotificationLevel.delivery_failed:
            log.error("notification_failed", notification_id=row["id"], receiver=row["receiver"])
            return failed, []
        notice = self._row(
            row["work_order_id"],
            NotificationLevel.delivery_failed,
            row["deadline"],
            cc,
            True,
            now,
            about=row["id"],
        )
        notice["id"] = notification_id(
            row["id"], NotificationLevel.delivery_failed.value, row["deadline"], cc
        )
        return failed, [notice]
