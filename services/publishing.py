"""What the worker publishes besides its batches' outputs: the outbox of command handling,
the escalations that came due, and at start what a crashed or earlier worker left
unpublished (orders never dispatched, deadlines the loaded calendar changed).

Each takes its stores and an outlet (the producer, streams/outputs) as ports; the worker
(streams/background) decides when each runs and how failures are waited out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import structlog

from workorder_pipeline.schemas.commands import EscalationMessage
from workorder_pipeline.schemas.workorder import WorkOrder
from workorder_pipeline.services.failures import error_name
from workorder_pipeline.services.ports import OutboxTopic

log = structlog.get_logger(__name__)

#: An outbox row: id, topic (an OutboxTopic), key and payload.
OutboxRow = Mapping[str, Any]


class Outlet(Protocol):
    """The producer the worker publishes through."""

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
        """Queue one message; the awaitable returned completes when the broker has it."""

    async def publish(self, orders: Iterable[WorkOrder]) -> None:
        """Publish orders to their units and wait until the broker has them all."""


class Outbox(Protocol):
    def outbox(self) -> list[Any]:
        """Rows written but not yet published, in the order written."""

    def published(self, ids: Sequence[int], now: datetime) -> None:
        """Mark rows published."""


class EscalationStore(Protocol):
    def fire(self, now: datetime) -> int: ...
    def pending(self) -> list[EscalationMessage]: ...
    def published(self, messages: list[EscalationMessage], now: datetime) -> None: ...


class Dispatches(Protocol):
    def undispatched(self) -> list[WorkOrder]: ...
    def dispatched(self, orders: Sequence[WorkOrder], now: datetime) -> None: ...


#: Processes rows in parts until each is published or given up (streams/retry.settle with
#: the worker's task): ``settle(process, rows, give_up)``.
Settle = Callable[
    [
        Callable[[Sequence[OutboxRow]], Awaitable[None]],
        Sequence[OutboxRow],
        Callable[[OutboxRow, BaseException], Awaitable[None]],
    ],
    Awaitable[object],
]


class OutboxRelay:
    """Publishes what command handling wrote to the outbox (a batch's, and any a crashed
    worker left), in the order it was written, then marks it published. One relay at a
    time, so the order holds. A row the broker refuses for good (too large, say) is set
    aside with an error in the log, and the rows after it go out."""

    def __init__(
        self,
        outbox: Outbox,
        outlet: Outlet,
        topics: Mapping[OutboxTopic, str],
        clock: Callable[[], datetime],
        settle: Settle,
    ) -> None:
        self._outbox = outbox
        self._outlet = outlet
        self._topics = topics
        self._clock = clock
        self._settle = settle
        self._lock = asyncio.Lock()

    async def publish(self) -> None:
        async with self._lock:
            while rows := await asyncio.to_thread(self._outbox.outbox):
                await self._settle(self._send, rows, self._skip)

    async def _send(self, rows: Sequence[OutboxRow]) -> None:
        send = self._outlet.send
        pending = [
            await send(self._topics[row["topic"]], row["key"].encode(), row["payload"].encode())
            for row in rows
        ]
        await asyncio.gather(*pending)
        await asyncio.to_thread(self._outbox.published, [row["id"] for row in rows], self._clock())

    async def _skip(self, row: OutboxRow, error: BaseException) -> None:
        log.error(
            "outbox_row_not_published", outbox_id=row["id"], topic=row["topic"], error=error_name(error)
        )
        await asyncio.to_thread(self._outbox.published, [row["id"]], self._clock())


async def publish_escalations(
    escalations: EscalationStore, outlet: Outlet, topic: str, clock: Callable[[], datetime]
) -> list[EscalationMessage]:
    """Fire what came due (each once), then publish what is not published yet (at least
    once: published, then marked). Returns the messages published."""
    fired = await asyncio.to_thread(escalations.fire, clock())
    messages = await asyncio.to_thread(escalations.pending)
    if not messages:
        return []
    pending = [
        await outlet.send(topic, message.recipient.encode(), message.model_dump_json(by_alias=True).encode())
        for message in messages
    ]
    await asyncio.gather(*pending)
    await asyncio.to_thread(escalations.published, messages, clock())
    log.info("escalations_published", fired=fired, published=len(messages))
    return messages


class Recovery:
    """Publishing what the database holds as not yet published: at start, and when the
    topics come back."""

    def __init__(
        self,
        relay: OutboxRelay,
        dispatches: Dispatches,
        outlet: Outlet,
        clock: Callable[[], datetime],
        recompute_deadlines: Callable[[], list[WorkOrder]] | None,
    ) -> None:
        self._relay = relay
        self._dispatches = dispatches
        self._outlet = outlet
        self._clock = clock
        self._recompute_deadlines = recompute_deadlines

    async def republish(self) -> None:
        """The outbox, then orders stored but never dispatched (a crash, or a broker that
        lost them)."""
        await self._relay.publish()
        orders = await asyncio.to_thread(self._dispatches.undispatched)
        if orders:
            await self._outlet.publish(orders)
            await asyncio.to_thread(self._dispatches.dispatched, orders, self._clock())
            log.info("undispatched_orders_published", count=len(orders))

    async def recount_deadlines(self) -> None:
        """Orders whose provisional deadline the loaded calendar changed, published again."""
        if self._recompute_deadlines is None:
            return
        changed = await asyncio.to_thread(self._recompute_deadlines)
        if changed:
            await self._outlet.publish(changed)
            log.info("provisional_deadlines_recomputed", count=len(changed))
