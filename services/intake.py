"""The intake service: a batch of inbound messages in, orders to dispatch and dead letters out.

It ties the pure processors (decode, normalize, route, open an order) to the repository,
and knows nothing of Kafka or metrics: the stream agent hands it messages and publishes
what it returns.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from processors.intake import DEFAULT_MAX_MESSAGE_BYTES, Rejection, decode_event
from processors.routing import route_signal
from processors.signals import to_signal
from processors.workorders import open_work_order
from schemas.deadletter import DeadLetter, RejectionReason, SourcePosition
from schemas.policy import Policy
from schemas.signal import SignalKind
from schemas.workorder import WorkOrder
from storage.repository import NewOrder, RegisterOutcome


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One consumed message, as the broker delivered it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int | None = None


class WorkOrderStore(Protocol):
    def register(self, batch: Sequence[NewOrder], now: datetime) -> RegisterOutcome: ...
    def mark_dispatched(self, orders: Sequence[WorkOrder], now: datetime) -> None: ...
    def undispatched(self, limit: int = 1000) -> list[WorkOrder]: ...


@dataclass(slots=True)
class IntakeResult:
    #: Orders to publish on the dispatched topic (new ones and never-published ones).
    to_dispatch: list[WorkOrder] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    received: Counter[SignalKind] = field(default_factory=Counter)
    rejected: Counter[RejectionReason] = field(default_factory=Counter)
    created: list[WorkOrder] = field(default_factory=list)
    redelivered: Counter[SignalKind] = field(default_factory=Counter)


class Intake:
    def __init__(
        self,
        policy: Policy,
        store: WorkOrderStore,
        contracts_by_topic: Mapping[str, str],
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.policy = policy
        self._store = store
        self._contracts = dict(contracts_by_topic)
        self._max_bytes = max_message_bytes

    def handle(self, messages: Sequence[InboundMessage], now: datetime) -> IntakeResult:
        """Validate, route and register a batch; every message ends as an order or a dead letter."""
        result = IntakeResult()
        new_orders: list[NewOrder] = []
        for message in messages:
            event = decode_event(message.value, self._contracts[message.topic], max_bytes=self._max_bytes)
            if isinstance(event, Rejection):
                result.rejected[event.reason] += 1
                result.dead_letters.append(dead_letter(message, event, now))
                continue
            signal = to_signal(event)
            result.received[signal.kind] += 1
            decision = route_signal(signal, self.policy.routing)
            order = open_work_order(signal, decision, self.policy.deadlines, now)
            new_orders.append(
                NewOrder(
                    order=order,
                    payload=event.model_dump(mode="json", by_alias=True),
                    decision={
                        "unit": decision.unit,
                        "priority": decision.priority.value,
                        "route_key": decision.route_key,
                        "route_path": list(decision.path),
                        "reason": decision.reason,
                        "due_at": order.due_at.isoformat(),
                        "source": f"{message.topic}/{message.partition}/{message.offset}",
                    },
                )
            )
        outcome = self._store.register(new_orders, now)
        result.created = outcome.created
        result.redelivered.update(outcome.redelivered)
        result.to_dispatch = outcome.to_dispatch
        return result

    def dispatched(self, orders: Sequence[WorkOrder], now: datetime) -> None:
        """Record that ``orders`` reached the dispatched topic."""
        self._store.mark_dispatched(orders, now)

    def undispatched(self) -> list[WorkOrder]:
        return self._store.undispatched()


def dead_letter(message: InboundMessage, rejection: Rejection, now: datetime) -> DeadLetter:
    return DeadLetter(
        reason=rejection.reason,
        detail=rejection.detail,
        source=SourcePosition(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=base64.b64encode(message.key).decode() if message.key is not None else None,
            timestamp_ms=message.timestamp_ms,
        ),
        payload=base64.b64encode(message.value).decode(),
        dead_lettered_at=now,
    )
