"""The hot path: inbound topics -> intake service -> dispatched and dead-letter topics.

A batched aiokafka consumer, not a faust agent: faust spends ~130 µs of CPU per event
in batches (several asyncio tasks per message), more than the whole intake service
does; a plain consumer reads a batch in a few µs per message (bench/README.md). faust
still runs the worker: commands, the leader's timers, start-up work.

Processing guarantee, at least once (the default), with idempotent effects: a batch is
stored in one transaction, its messages are published and acknowledged by the broker, and
only then are its offsets committed. A crash anywhere before that re-delivers the batch;
publisher ids already stored make no second order, and orders stored but never
published are published then. Exactly once (``WO_PROCESSING_GUARANTEE``, Kafka only): after
the database transaction, the batch's outputs and its offsets are committed in one Kafka
transaction; a crash before that commit re-delivers the batch, whose orders go out again
(services/intake.py, ``_republished``). Before the group takes partitions away (a
rebalance), the batch in hand is finished and committed, so the next owner does not redo it.

The commands consumer of exactly-once mode (streams/command_consumer.py) is this loop with
other topics, group and handling: the hooks are ``_task``, ``_topics``, ``_group``,
``_counted``, ``_set_aside`` and ``_done``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar

import mode
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from workorder_pipeline.config.settings import ProcessingGuarantee, Settings
from workorder_pipeline.services.failures import error_name
from workorder_pipeline.services.intake import InboundMessage, Intake, IntakeResult, combined
from workorder_pipeline.streams import metrics
from workorder_pipeline.streams.kafka.security import aiokafka_options
from workorder_pipeline.streams.outputs import Committer, Outputs
from workorder_pipeline.streams.resilience import Outage, Stopped, Task, close_quietly
from workorder_pipeline.streams.retry import settle

log = structlog.get_logger(__name__)

#: How old a consumer's view of partition leaders may get. aiokafka retries a ListOffsets to
#: a partition's old leader until its metadata is refreshed (5 min by default): in a drill a
#: leader kill stalled faust's commands consumer that long (bench/README, drills).
METADATA_MAX_AGE_MS = 30_000

#: How long stopping waits for the batch in hand before leaving it to be re-delivered (a
#: batch waiting out an outage is abandoned at once; this is for one being stored): the
#: worker must be gone within 15 s of SIGTERM.
STOP_WAIT_S = 8.0
#: How long leaving the group may take when stopping (the broker may be gone).
CONSUMER_STOP_WAIT_S = 3.0


class BatchConsumer(mode.Service):
    """The consuming loop; what a batch is made of is the subclass's (hooks below)."""

    task_name: ClassVar[Task]

    def __init__(
        self, settings: Settings, outputs: Outputs, clock: Callable[[], datetime], **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._settings = settings
        self._outputs = outputs
        self._clock = clock
        self._consumer: AIOKafkaConsumer | None = None
        #: Held while a batch is processed and committed (a rebalance waits for it).
        self._batch_in_hand = asyncio.Lock()
        #: Next offset to read, per partition: processed but maybe not committed yet.
        self._processed: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._exactly_once = settings.processing_guarantee is ProcessingGuarantee.exactly_once
        #: Set when the worker stops, or (``_suspended``) while its topics are not as expected:
        #: either ends the wait of a batch that waits out an outage.
        self._stopping = asyncio.Event()
        self._suspended = asyncio.Event()
        self._abandon = asyncio.Event()

    async def _open(self) -> None:
        """A new consumer, subscribed (the consuming loop makes one when there is none)."""
        settings = self._settings
        consumer = AIOKafkaConsumer(
            isolation_level="read_committed" if self._exactly_once else "read_uncommitted",
            bootstrap_servers=settings.bootstrap_servers,
            group_id=self._group(),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.consumer_fetch_max_wait_ms,
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
            max_poll_records=settings.intake_batch_size,
            rebalance_timeout_ms=int(settings.kafka_rebalance_timeout_s * 1000),
            session_timeout_ms=int(settings.kafka_session_timeout_s * 1000),
            heartbeat_interval_ms=int(settings.kafka_heartbeat_interval_s * 1000),
            **aiokafka_options(settings),
        )
        consumer.subscribe(self._topics(), listener=_FinishBatchFirst(self))
        try:
            await consumer.start()
        except BaseException:
            await close_quietly(consumer.stop(), CONSUMER_STOP_WAIT_S, "intake consumer")
            raise
        if self._abandon.is_set():  # suspended or stopped while it started: not this one
            await close_quietly(consumer.stop(), CONSUMER_STOP_WAIT_S, "intake consumer")
            return
        self._consumer = consumer

    def _topics(self) -> list[str]:
        raise NotImplementedError

    def _group(self) -> str:
        raise NotImplementedError

    async def on_stop(self) -> None:
        self._stopping.set()
        self._abandon.set()
        await self._close()

    async def _close(self) -> None:
        """Stop consuming: the batch in hand is finished if it is being stored, abandoned
        (not committed, so delivered again) if it waits out an outage."""
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        try:
            await asyncio.wait_for(self._batch_in_hand.acquire(), STOP_WAIT_S)
        except TimeoutError:
            log.warning(f"{self.task_name.value}_stopped_mid_batch", detail="the batch will be re-delivered")
        else:
            self._batch_in_hand.release()
        await close_quietly(consumer.stop(), CONSUMER_STOP_WAIT_S, "intake consumer")

    async def suspend(self) -> None:
        """The topics are not as expected (the broker lost them): abandon the batch in hand
        (its offsets mean nothing on re-created topics; what it stored is re-published from
        the database) and consume nothing until :meth:`resume`."""
        self._suspended.set()
        self._abandon.set()
        await self._close()
        self._processed.clear()
        self._committed.clear()

    async def resume(self) -> None:
        """The topics are back as expected: consume again, with a new consumer."""
        if self._stopping.is_set():
            return
        self._abandon.clear()
        self._suspended.clear()

    @mode.Service.task
    async def _consume(self) -> None:
        interval_s = self._settings.intake_batch_interval_ms / 1000
        last_batch_at = 0.0
        fetching = Outage(self.task_name)
        while not self.should_stop:
            if self._suspended.is_set():
                await asyncio.sleep(0.05)
                continue
            consumer = self._consumer
            if consumer is None:
                try:
                    await self._open()
                except Exception as exc:
                    await asyncio.sleep(fetching.failed(exc))
                continue
            # The consumer keeps fetching meanwhile: the next batch takes what arrived.
            wait_s = last_batch_at + interval_s - time.monotonic()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            try:
                fetched = await consumer.getmany(
                    timeout_ms=int(self._settings.intake_batch_seconds * 1000),
                    max_records=self._settings.intake_batch_size,
                )
            except ConsumerStoppedError:
                continue  # stopping, or suspended
            except Exception as exc:  # aiokafka retries what it can; this is what it could not
                self._count_failure()
                await asyncio.sleep(fetching.failed(exc))
                continue
            fetching.succeeded()
            messages = self._messages(fetched)
            if not messages:
                continue
            last_batch_at = time.monotonic()
            async with self._batch_in_hand:
                # Transient failures are waited out; a message that fails permanently is
                # isolated and dead-lettered, and the rest of the batch goes on.
                try:
                    parts = await settle(
                        self.task_name, self._counted, messages, self._set_aside, self._abandon
                    )
                except Stopped:
                    continue  # not committed: delivered again (or re-published from the database)
                for tp, records in fetched.items():
                    self._processed[tp] = records[-1].offset + 1
                await self._commit(consumer)
            self._done(parts, len(messages), time.monotonic() - last_batch_at)

    def _messages(self, fetched: dict[TopicPartition, list[Any]]) -> list[InboundMessage]:
        """The records fetched (headers left out: intake reads none)."""
        return [
            InboundMessage(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp)
            for records in fetched.values()
            for r in records
        ]

    def _done(self, parts: list[tuple[Any, dict[str, int]]], size: int, done_s: float) -> None:
        """A batch committed (``parts``: what ``settle`` returned), ``done_s`` after it was read."""
        raise NotImplementedError

    def _count_failure(self) -> None:
        """A batch or a fetch failed (it is retried)."""

    async def _set_aside(self, message: InboundMessage, error: BaseException) -> tuple[Any, dict[str, int]]:
        """A message that failed alone, permanently (``settle``'s ``give_up``)."""
        raise NotImplementedError

    async def _process(self, messages: Sequence[InboundMessage]) -> tuple[Any, dict[str, int]]:
        """Handle a batch (or part of it) and publish what it makes; exactly once, commit its
        offsets with that; returns the result and when each step ended (ms)."""
        raise NotImplementedError

    async def _counted(self, messages: Sequence[InboundMessage]) -> tuple[Any, dict[str, int]]:
        try:
            return await self._process(messages)
        except Exception:
            self._count_failure()
            raise

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        """Commit what was processed. A failure is logged, not retried: the next commit
        carries the same offsets, and a re-delivered batch has no second effect."""
        assigned = consumer.assignment()
        offsets = {
            tp: n for tp, n in self._processed.items() if tp in assigned and self._committed.get(tp) != n
        }
        if not offsets:
            return
        try:
            await consumer.commit({tp: OffsetAndMetadata(n, "") for tp, n in offsets.items()})
        except Exception as exc:
            log.warning("offsets_not_committed", error=type(exc).__name__, detail=str(exc)[:300])
            return
        self._committed.update(offsets)

    async def finish_before_revoke(self, revoked: set[TopicPartition]) -> None:
        async with self._batch_in_hand:
            if self._consumer is not None:
                await self._commit(self._consumer)
        for tp in revoked:
            self._processed.pop(tp, None)
            self._committed.pop(tp, None)

    async def learn_committed(self, assigned: set[TopicPartition]) -> None:
        """Where the group left the partitions now ours (for the lag gauge)."""
        consumer = self._consumer
        for tp in assigned:
            try:
                committed = await consumer.committed(tp) if consumer is not None else None
            except KafkaError:
                committed = None
            self._committed[tp] = committed or 0

    def assigned(self) -> list[tuple[str, int]]:
        """The partitions this worker consumes now (for the lag gauge)."""
        consumer = self._consumer
        return [(tp.topic, tp.partition) for tp in consumer.assignment()] if consumer is not None else []


class IntakeConsumer(BatchConsumer):
    task_name = Task.intake

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
        await self._outputs.publish((), result.dead_letters)
        return result, {}

    async def _process(self, messages: Sequence[InboundMessage]) -> tuple[IntakeResult, dict[str, int]]:
        """Store, publish, mark dispatched; returns the result and when each step ended (ms)."""
        started = time.monotonic()
        result = await asyncio.to_thread(self._intake.handle, messages, self._clock())
        stored = time.monotonic()
        if self._exactly_once:
            offsets = next_offsets(messages)
            group = self._settings.consumer_group
            messages_out = self._outputs.messages(result.to_dispatch, result.dead_letters)
            await self._outputs.publish_committing(Committer.intake, messages_out, offsets, group)
            self._committed.update(offsets)
        else:
            await self._outputs.publish(result.to_dispatch, result.dead_letters)
        published = time.monotonic()
        await asyncio.to_thread(self._intake.dispatched, result.to_dispatch, self._clock())
        steps = {
            "stored_ms": round((stored - started) * 1000),
            "published_ms": round((published - started) * 1000),
        }
        return result, steps

    def _record(self, result: IntakeResult, size: int, timings: dict[str, int]) -> None:
        metrics.record_intake(result, self._clock())
        log_batch(result, size, timings)


def next_offsets(messages: Sequence[InboundMessage]) -> dict[TopicPartition, int]:
    """Per partition, the offset after the batch's last message (what a commit records)."""
    offsets: dict[TopicPartition, int] = {}
    for message in messages:
        tp = TopicPartition(message.topic, message.partition)
        offsets[tp] = max(offsets.get(tp, 0), message.offset + 1)
    return offsets


class _FinishBatchFirst(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: BatchConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._owner.finish_before_revoke(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._owner.learn_committed(assigned)
        partitions = sorted(f"{tp.topic}/{tp.partition}" for tp in assigned)
        log.info(f"{self._owner.task_name.value}_partitions_assigned", partitions=partitions)


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
