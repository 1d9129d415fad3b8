"""The hot path: inbound topics -> intake service -> dispatched and dead-letter topics.

The consuming loop, its processing guarantees and rebalances are streams/batch_consumer.py's;
here is what an intake batch is: stored by the intake service (services/intake.py), its
orders and dead letters published. Exactly once, each goes out in the transaction of the
input partition it came from: an order with that of the message it was registered from
(``IntakeResult.origins``), so the partition whose batch comes again is the one that
publishes it again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import structlog
from aiokafka import TopicPartition

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.services.failures import error_name
from workorder_pipeline.services.intake import Admission, InboundMessage, Intake, IntakeResult, combined
from workorder_pipeline.streams import metrics
from workorder_pipeline.streams.batch_consumer import BatchConsumer
from workorder_pipeline.streams.outputs import Committer, Message, Outputs
from workorder_pipeline.streams.resilience import Task
from workorder_pipeline.streams.transactions import PartitionBatch, next_offsets

log = structlog.get_logger(__name__)


class IntakeConsumer(BatchConsumer):
    task_name = Task.intake
    committer = Committer.intake

    def __init__(
        self,
        settings: Settings,
        intake: Intake,
        outputs: Outputs,
        clock: Callable[[], datetime],
        **kwargs: Any,
    ) -> None:
        super().__init__(settings, outputs, clock, **kwargs)
        self._intake = intake

    def _topics(self) -> list[str]:
        return sorted(self._settings.topics.inbound())

    def _group(self) -> str:
        return self._settings.consumer_group

    def _done(self, parts: list[tuple[Any, dict[str, int]]], size: int, done_s: float) -> None:
        metrics.INTAKE_BATCH_SECONDS.observe(done_s)
        steps = parts[0][1] if len(parts) == 1 else {"parts": len(parts)}
        result = combined([part for part, _ in parts])
        self._record(result, size, {**steps, "done_ms": round(done_s * 1000)})

    def _count_failure(self) -> None:
        metrics.INTAKE_BATCH_FAILURES.inc()

    async def _set_aside(self, message: InboundMessage, error: BaseException) -> tuple[Any, dict[str, int]]:
        """A message that failed alone, permanently: dead-lettered as unprocessable."""
        result = self._intake.unprocessable(message, error_name(error), self._clock())
        if self._exactly_once:  # with its offset: a re-delivery letters it again, once
            await self._commit_transactions(self._by_partition([message], result))
        else:
            await self._outputs.publish((), result.dead_letters)
        return result, {}

    async def _process(self, messages: Sequence[InboundMessage]) -> tuple[IntakeResult, dict[str, int]]:
        """Store, publish, mark dispatched; returns the result and when each step ended (ms)."""
        started = time.monotonic()
        admission = self._ahead.prepared(messages)
        if isinstance(admission, Admission):  # admitted while the batch before was published
            result = await asyncio.to_thread(self._intake.record, admission)
        else:
            result = await asyncio.to_thread(self._intake.handle, messages, self._clock())
        stored = time.monotonic()
        if self._exactly_once:
            await self._commit_transactions(self._by_partition(messages, result))
        else:
            await self._outputs.publish(result.to_dispatch, result.dead_letters)
        published = time.monotonic()
        self._read_ahead()
        await asyncio.to_thread(self._intake.dispatched, result.to_dispatch, self._clock())
        steps = {
            "admitted_ahead": int(isinstance(admission, Admission)),
            "stored_ms": round((stored - started) * 1000),
            "published_ms": round((published - started) * 1000),
        }
        return result, steps

    async def _prepare(self, messages: list[InboundMessage]) -> Admission:
        return await asyncio.to_thread(self._intake.admit, messages, self._clock())

    def _by_partition(
        self, messages: Sequence[InboundMessage], result: IntakeResult
    ) -> dict[TopicPartition, PartitionBatch]:
        """Per input partition: the dead letters of its messages, the orders registered from
        them, and its next offset."""
        out: dict[TopicPartition, tuple[list[Message], int]] = {
            tp: ([], offset) for tp, offset in next_offsets(messages).items()
        }
        for letter in result.dead_letters:
            source = TopicPartition(letter.source.topic, letter.source.partition)
            out[source][0].extend(self._outputs.messages((), [letter]))
        for order in result.to_dispatch:
            out[TopicPartition(*result.origins[order.id])][0].extend(self._outputs.messages([order], ()))
        return dict(out)

    def _record(self, result: IntakeResult, size: int, timings: dict[str, int]) -> None:
        metrics.record_intake(result, self._clock())
        log_batch(result, size, timings)


def log_batch(result: IntakeResult, size: int, timings: dict[str, int]) -> None:
    """``timings``: when the batch was stored, published and done (committed), ms after it was read."""
    # Counts and ids only: plates and complainants stay out of the log.
    provisional = [order.id for order in result.created if order.deadline_provisional]
    if provisional:
        log.warning(
            "provisional_deadlines",
            orders=provisional,
            detail="the official holiday schedule of a year they count into is not loaded: add it "
            "to policy/calendar.yaml; they are recomputed when a worker starts with it",
        )
    for letter in result.dead_letters:
        log.warning(
            "message_dead_lettered",
            reason=letter.reason.value,
            detail=letter.detail,
            topic=letter.source.topic,
            partition=letter.source.partition,
            offset=letter.source.offset,
        )
    log.info(
        "intake_batch",
        messages=size,
        created=len(result.created),
        merged=sum(result.merged.values()),
        suppressed=sum(result.suppressed.values()),
        redelivered=sum(result.redelivered.values()),
        dead_lettered=len(result.dead_letters),
        dispatched=len(result.to_dispatch),
        **timings,
    )
