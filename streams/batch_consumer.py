"""The consuming loop of the hot path (streams/intake_consumer.py) and of exactly-once commands.

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
transaction per input partition, by that partition's producer (streams/transactions.py);
a crash before that commit re-delivers the batch, whose orders go out again
(services/intake.py, ``_republished``). Before the group takes partitions away (a
rebalance), the batch in hand is finished and committed, so the next owner does not redo it.
When the group gives partitions, their producers are started first (fencing a previous
owner that may still hold a batch of them), then reading starts again from the offsets
committed by then; a partition whose transaction failed makes the worker join the group
again.

The commands consumer of exactly-once mode (streams/command_consumer.py) is this loop with
other topics, group and handling: the hooks are ``_task``, ``_topics``, ``_group``,
``_groups``, ``_counted``, ``_set_aside`` and ``_done``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar

import mode
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from workorder_pipeline.config.settings import ProcessingGuarantee, Settings
from workorder_pipeline.services.failures import error_name
from workorder_pipeline.services.intake import InboundMessage
from workorder_pipeline.streams.kafka.security import aiokafka_options
from workorder_pipeline.streams.outputs import Committer, Outputs
from workorder_pipeline.streams.read_ahead import ReadAhead
from workorder_pipeline.streams.rebalance import FinishBatchFirst
from workorder_pipeline.streams.resilience import Outage, Stopped, Task, close_quietly
from workorder_pipeline.streams.retry import settle
from workorder_pipeline.streams.transactions import PartitionBatch, PartitionProducers, PartitionsLost

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
    committer: ClassVar[Committer]

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
        #: Exactly once: the partitions' transactional producers; how many assignments there
        #: have been, where each partition's reading started again at the last one, and
        #: whether the group must be joined again (a partition was lost).
        self._transactions = (
            PartitionProducers(settings, outputs, self.committer) if self._exactly_once else None
        )
        self._assignments = 0
        self._starts: dict[TopicPartition, int] = {}
        self._rejoin = False
        #: When the batch in hand was read; the next one may be read ahead (``_read_ahead``).
        self._batch_read_at = 0.0
        self._ahead = ReadAhead(self._messages, self._prepare, settings.intake_batch_size)

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
        consumer.subscribe(self._topics(), listener=FinishBatchFirst(self, consumer))
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
        await self._ahead.drop()
        await close_quietly(consumer.stop(), CONSUMER_STOP_WAIT_S, "intake consumer")
        if self._transactions is not None:
            await self._transactions.release()

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
        fetching = Outage(self.task_name)
        while not self.should_stop:
            if self._suspended.is_set():
                await asyncio.sleep(0.05)
                continue
            if self._rejoin:  # exactly once, a partition was lost: the group decides who owns it
                self._rejoin = False
                await self._close()
                self._processed.clear()
                self._committed.clear()
            consumer = self._consumer
            if consumer is None:
                try:
                    await self._open()
                except Exception as exc:
                    await asyncio.sleep(fetching.failed(exc))
                continue
            ahead = await self._ahead.taken()  # taken from the consumer: it must be the next batch
            if ahead is not None and self._consumer is not consumer:
                continue  # closed meanwhile (stopping, suspended): its successor reads them again
            if ahead is not None:
                fetched, messages, assignments = ahead.fetched, ahead.messages, ahead.assignments
            else:
                # The consumer keeps fetching meanwhile: the next batch takes what arrived.
                wait_s = self._batch_read_at + interval_s - time.monotonic()
                if wait_s > 0:
                    await asyncio.sleep(wait_s)
                assignments = self._assignments
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
            self._batch_read_at = time.monotonic()
            async with self._batch_in_hand:
                if assignments != self._assignments:  # exactly once: read again where it started
                    self._rewind(consumer, fetched)
                    continue
                parts = await self._settled(messages)
                if parts is None:
                    continue  # not committed: delivered again (or re-published from the database)
                for tp, records in fetched.items():
                    self._processed[tp] = records[-1].offset + 1
                await self._commit(consumer)
            self._done(parts, len(messages), time.monotonic() - self._batch_read_at)

    async def _settled(self, messages: list[InboundMessage]) -> list[tuple[Any, dict[str, int]]] | None:
        """The batch processed (``settle``'s parts), or None if it was left undone. Transient
        failures are waited out; a message that fails permanently is isolated and
        dead-lettered, and the rest of the batch goes on."""
        parts: list[tuple[Any, dict[str, int]]] = []
        try:
            for group in self._groups(messages):
                parts += await settle(self.task_name, self._counted, group, self._set_aside, self._abandon)
        except PartitionsLost:
            self._rejoin = True
            return None
        except Stopped:
            return None
        return parts

    def _groups(self, messages: list[InboundMessage]) -> list[list[InboundMessage]]:
        """What the batch is handled as, in order: one whole (the intake)."""
        return [messages]

    def _rewind(self, consumer: AIOKafkaConsumer, fetched: dict[TopicPartition, list[Any]]) -> None:
        """Exactly once: the group assigned partitions while this batch was read, maybe from
        where the previous owner's last transaction had not committed yet. Left unread:
        each partition is read again from where it was found committed after the fencing."""
        assigned = consumer.assignment()
        for tp in fetched:
            if tp in assigned and tp in self._starts:
                consumer.seek(tp, self._starts[tp])

    async def _commit_transactions(self, batches: dict[TopicPartition, PartitionBatch]) -> None:
        """Exactly once: each partition's messages and offset, in its own transaction."""
        assert self._transactions is not None
        try:
            await self._transactions.commit(batches, self._group())
        except PartitionsLost as lost:
            self._committed.update({tp: batches[tp][1] for tp in lost.committed})
            raise
        self._committed.update({tp: offset for tp, (_, offset) in batches.items()})

    def _messages(self, fetched: dict[TopicPartition, list[Any]]) -> list[InboundMessage]:
        """The records fetched (headers left out: intake reads none)."""
        return [
            InboundMessage(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp)
            for records in fetched.values()
            for r in records
        ]

    def _read_ahead(self) -> None:
        """The batch in hand is stored: the next is taken and prepared while this one is
        published (streams/read_ahead.py), once the batch interval has passed."""
        consumer = self._consumer
        interval_s = self._settings.intake_batch_interval_ms / 1000
        if consumer is not None and time.monotonic() - self._batch_read_at >= interval_s:
            self._ahead.start(consumer, self._assignments)

    async def _prepare(self, messages: list[InboundMessage]) -> object:
        """The CPU-only first step of handling ``messages`` read ahead (``_read_ahead``)."""

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
            if self._transactions is not None:
                await self._transactions.release(revoked)
        for tp in revoked:
            self._processed.pop(tp, None)
            self._committed.pop(tp, None)
            self._starts.pop(tp, None)

    async def learn_committed(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        """Where the group left the partitions now ours (for the lag gauge; exactly once,
        where reading starts again, once their producers are started)."""
        if self._transactions is not None:
            async with self._batch_in_hand:
                try:
                    await self._take(consumer, assigned)
                finally:
                    # Last: a batch read before now (maybe read before the seeks, maybe from
                    # offsets found before the fencing) is read again from ``_starts``.
                    self._assignments += 1
            return
        for tp in assigned:
            try:
                committed = await consumer.committed(tp)
            except KafkaError:
                committed = None
            self._committed[tp] = committed or 0

    async def _take(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        """Start the partitions' producers: each fences the partition's previous owner and
        ends its open transaction, which may commit offsets after aiokafka read them for this
        assignment (it does so alongside this callback). So the committed offsets are read
        again now and reading starts there."""
        assert self._transactions is not None
        failed = await self._transactions.take(assigned)
        partitions = sorted(assigned)
        for tp in partitions:
            self._processed.pop(tp, None)  # a batch of an earlier assignment is not ours to commit
        try:
            committed = await asyncio.gather(*(consumer.committed(tp) for tp in partitions))
            for tp, offset in zip(partitions, committed, strict=True):
                if offset is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, offset)
                self._starts[tp] = await consumer.position(tp)
                self._committed[tp] = offset or 0
        except (KafkaError, ConsumerStoppedError) as exc:
            log.warning(f"{self.task_name.value}_offsets_not_read", error=error_name(exc))
            failed = set(partitions)
        if failed:  # not safe to read them: the group assigns them again
            self._rejoin = True

    def assigned(self) -> list[tuple[str, int]]:
        """The partitions this worker consumes now (for the lag gauge)."""
        consumer = self._consumer
        return [(tp.topic, tp.partition) for tp in consumer.assignment()] if consumer is not None else []
