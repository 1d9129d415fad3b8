"""Exactly once: one transactional producer per input partition, fencing the previous owner.

A batch's outputs and input offsets commit in one Kafka transaction per input partition,
through that partition's own producer, whose transactional id names it:
``{group}-{committer}-{topic}-{partition}`` (the pre-KIP-447 "EOS alpha" of Kafka Streams
and faust). A worker starts the producers of the partitions the group gives it before it
reads them (``take``): each start (InitProducerId) fences the producer of the partition's
previous owner and ends the transaction that one left open. A worker that stalled past its
session timeout and comes back (a zombie) therefore cannot commit the batch it held: its
transaction fails (fenced), and the batch is the new owner's alone.

Why not KIP-447 (TxnOffsetCommit v3 with the consumer's generation and member id): aiokafka
0.14 only builds TxnOffsetCommit v0 (aiokafka/protocol/transaction.py), from its sender's
private handler classes; v3 is a flexible-version request with tagged fields that its
protocol module does not define for this API. Carrying the generation through would mean
replacing the sender's handler and request classes, private code that changes between
releases. Per-partition ids use only the public producer API.

A producer is started only when the group assigns its partition, never again after a
failure: a worker that has been replaced must not fence the new owner by starting a
producer again. A failed transaction loses its partitions until the worker has joined the
group again (:class:`PartitionsLost`). Producers of partitions with nothing to commit cost
nothing per batch; those of revoked partitions are closed (``release``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence

import structlog
from aiokafka import AIOKafkaProducer, TopicPartition

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.services.failures import error_name
from workorder_pipeline.services.intake import InboundMessage
from workorder_pipeline.streams.kafka.producers import new_producer
from workorder_pipeline.streams.outputs import STOP_WAIT_S, Committer, Message, Outputs
from workorder_pipeline.streams.resilience import Stopped, TopicsNotReady, close_quietly

log = structlog.get_logger(__name__)

#: Per partition: the messages to publish and the next offset to read (what the commit records).
PartitionBatch = tuple[Sequence[Message], int]


class PartitionsLost(Stopped):
    """Some partitions of a batch were not committed: their transactions failed or were
    fenced (another worker owns them now). Their part of the batch is left to be delivered
    again, to whoever owns them once the worker has joined the group again."""

    def __init__(self, committed: Iterable[TopicPartition], lost: Iterable[TopicPartition]) -> None:
        self.committed = frozenset(committed)
        self.lost = frozenset(lost)
        super().__init__(f"{len(self.lost)} partition(s) not committed")


class PartitionProducers:
    """The transactional producers of one committer's assigned input partitions."""

    def __init__(self, settings: Settings, outputs: Outputs, committer: Committer) -> None:
        self._settings = settings
        self._outputs = outputs
        self._committer = committer
        self._producers: dict[TopicPartition, AIOKafkaProducer] = {}

    def transactional_id(self, tp: TopicPartition) -> str:
        return f"{self._settings.consumer_group}-{self._committer.value}-{tp.topic}-{tp.partition}"

    def held(self) -> set[TopicPartition]:
        return set(self._producers)

    async def take(self, partitions: Iterable[TopicPartition]) -> set[TopicPartition]:
        """Start the producers of partitions just assigned (fencing their previous owners);
        returns those whose producer could not be started."""
        partitions = sorted(partitions)
        await self.release(partitions)
        started = await asyncio.gather(*(self._start(tp) for tp in partitions), return_exceptions=True)
        failed: set[TopicPartition] = set()
        for tp, outcome in zip(partitions, started, strict=True):
            if isinstance(outcome, AIOKafkaProducer):
                self._producers[tp] = outcome
            else:
                failed.add(tp)
                log.warning(
                    "transactional_producer_not_started",
                    partition=f"{tp.topic}/{tp.partition}",
                    error=error_name(outcome),
                )
        return failed

    async def _start(self, tp: TopicPartition) -> AIOKafkaProducer:
        producer = new_producer(self._settings, transactional_id=self.transactional_id(tp))
        try:
            await producer.start()  # InitProducerId: fences the previous owner, ends its transaction
        except BaseException:
            await close_quietly(producer.stop(), STOP_WAIT_S, "transactional producer")
            raise
        return producer

    async def release(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Close the producers of ``partitions`` (default: all)."""
        chosen = list(self._producers) if partitions is None else partitions
        dropped = [producer for tp in chosen if (producer := self._producers.pop(tp, None)) is not None]
        await asyncio.gather(
            *(close_quietly(producer.stop(), STOP_WAIT_S, "transactional producer") for producer in dropped)
        )

    async def commit(self, batches: Mapping[TopicPartition, PartitionBatch], group_id: str) -> None:
        """Per partition, publish its messages and commit its offset for ``group_id`` in one
        transaction of its producer (all partitions at once). Raises :class:`PartitionsLost`
        naming those that committed and those that did not (aborted: nothing visible)."""
        if self._outputs.is_shut:
            raise TopicsNotReady("the worker's topics are not as expected: publishing is paused")
        order = list(batches)
        outcomes = await asyncio.gather(
            *(self._commit_one(tp, *batches[tp], group_id) for tp in order), return_exceptions=True
        )
        errors = {tp: exc for tp, exc in zip(order, outcomes, strict=True) if isinstance(exc, BaseException)}
        if not errors:
            return
        for exc in errors.values():
            if isinstance(exc, asyncio.CancelledError):
                raise exc
        await self.release(errors)  # unusable now; started again only when the group assigns them
        log.warning(
            "partitions_not_committed",
            committer=self._committer.value,
            partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in errors),
            error=error_name(next(iter(errors.values()))),
        )
        raise PartitionsLost(set(order) - set(errors), errors)

    async def _commit_one(
        self, tp: TopicPartition, messages: Sequence[Message], offset: int, group_id: str
    ) -> None:
        producer = self._producers.get(tp)
        if producer is None:
            raise PartitionNotHeld(f"{tp.topic}/{tp.partition}")
        async with producer.transaction():
            await self._outputs.send_all(messages, producer)
            await producer.send_offsets_to_transaction({tp: offset}, group_id)


class PartitionNotHeld(Stopped):
    """No producer for the partition: its start failed, or a transaction of it failed since
    the group assigned it (this worker may have been replaced: it must not start one)."""


def next_offsets(messages: Sequence[InboundMessage]) -> dict[TopicPartition, int]:
    """Per partition, the offset after the batch's last message (what a commit records)."""
    offsets: dict[TopicPartition, int] = {}
    for message in messages:
        tp = TopicPartition(message.topic, message.partition)
        offsets[tp] = max(offsets.get(tp, 0), message.offset + 1)
    return offsets
