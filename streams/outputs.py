"""The worker's producer: every message it publishes goes through ``Outputs``.

Dispatched orders, dead letters, lifecycle events and escalations all leave through one
aiokafka producer (acks from every in-sync replica). ``send`` returns once the message is
queued; awaiting what it returns waits until the broker has it, so a caller can queue a
whole batch and then wait once.

In exactly-once mode an intake batch's orders and dead letters (and a command batch's
announcements and dead letters) leave through transactional producers, one per input
partition of each consumer (``Committer``), in one Kafka transaction with that partition's
offsets (streams/transactions.py): a ``read_committed`` consumer sees them exactly when the
offsets commit. They publish with ``send_all``.

While the topic check (streams/topic_watch) finds the topics not as expected, the gate is
shut: every send raises ``TopicsNotReady`` (the caller retries), and when it opens again
a new producer is made (the old one's metadata describes the lost topics).
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Awaitable, Iterable, Sequence
from enum import StrEnum
from typing import Any

import mode
import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner, murmur2

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.schemas.deadletter import DeadLetter
from workorder_pipeline.schemas.errors import ConfigurationError
from workorder_pipeline.schemas.workorder import WorkOrder
from workorder_pipeline.streams.kafka.producers import new_producer
from workorder_pipeline.streams.resilience import TopicsNotReady, close_quietly

log = structlog.get_logger(__name__)

Message = tuple[str, bytes | None, bytes]


class Committer(StrEnum):
    """Who commits its input offsets in Kafka transactions (its own producers, one per input
    partition: streams/transactions.py)."""

    intake = "intake"
    commands = "commands"


#: How many keys' partitions ``Outputs`` remembers before it starts again.
PARTITION_MEMO_SIZE = 4096

#: How long stopping a producer may take (flushing to a broker that may be gone).
STOP_WAIT_S = 3.0


class Outputs(mode.Service):
    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()
        self._partitioner = DefaultPartitioner()
        #: (key, partition count) -> index into the sorted partitions, as DefaultPartitioner has it.
        self._partition_index: dict[tuple[bytes, int], int] = {}
        self._shut = False

    async def on_start(self) -> None:
        await self._ensure_producer()

    async def on_stop(self) -> None:
        await self._drop_producer()

    async def shut(self) -> None:
        """Publish nothing until :meth:`reopen`."""
        self._shut = True
        await self._drop_producer()

    @property
    def is_shut(self) -> bool:
        return self._shut

    async def reopen(self) -> None:
        await self._drop_producer()
        self._shut = False

    async def _drop_producer(self) -> None:
        async with self._starting:
            producer, self._producer = self._producer, None
        if producer is not None:
            # The broker may be gone: what the producer held is published again later.
            await close_quietly(producer.stop(), STOP_WAIT_S, "producer")

    async def _ensure_producer(self) -> AIOKafkaProducer:
        # Agents may publish before the service has been started: whoever comes first starts it.
        if self._shut:
            raise TopicsNotReady("the worker's topics are not as expected: publishing is paused")
        async with self._starting:
            if self._producer is None:
                producer = new_producer(self._settings)
                await producer.start()
                self._producer = producer
            return self._producer

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
        """Queue one message; the awaitable returned completes when the broker has it."""
        producer = await self._ensure_producer()
        sent: Awaitable[Any] = await producer.send(topic, value=value, key=key)
        return sent

    async def publish(self, orders: Iterable[WorkOrder], letters: Iterable[DeadLetter] = ()) -> None:
        """Publish orders and dead letters (see ``messages``) and wait until the broker has them all."""
        await self.send_all(self.messages(orders, letters))

    def messages(self, orders: Iterable[WorkOrder], letters: Iterable[DeadLetter]) -> list[Message]:
        """Each order to its unit and a copy to each unit in ``copied_to``; each dead letter."""
        topics = self._settings.topics
        messages: list[Message] = []
        for letter in letters:
            key = letter.source.key  # base64 in the letter; the Kafka key is the original bytes
            value = letter.model_dump_json(by_alias=True).encode()
            messages.append((topics.dead_letters, base64.b64decode(key) if key is not None else None, value))
        for order in orders:
            value = order.dispatch_json()
            messages += [(topics.dispatched, unit.encode(), value) for unit in (order.unit, *order.copied_to)]
        return messages

    async def send_all(self, messages: Sequence[Message], producer: AIOKafkaProducer | None = None) -> None:
        """Send (topic, key, value) messages in order and wait until the broker has them all.

        They go as one record batch per partition (the key picks it, as ``send`` would):
        queueing them one by one cost ~10 µs of CPU each.
        """
        producer = producer or await self._ensure_producer()
        by_partition: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = {}
        partitions: dict[str, list[int]] = {}
        for topic, key, value in messages:
            if topic not in partitions:
                partitions[topic] = sorted(await producer.partitions_for(topic))
            partition = self._partition(key, partitions[topic])
            by_partition.setdefault((topic, partition), []).append((key, value))
        pending: list[Awaitable[Any]] = []
        for (topic, partition), records in by_partition.items():
            batch = producer.create_batch()
            for key, value in records:
                if batch.append(key=key, value=value, timestamp=None) is None:  # full
                    pending.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    if batch.append(key=key, value=value, timestamp=None) is None:
                        raise ValueError(f"a message of {len(value):,} bytes exceeds the producer's limit")
            pending.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*pending)

    def _partition(self, key: bytes | None, partitions: list[int]) -> int:
        """The partition ``send`` would choose. aiokafka hashes a key in pure Python (2–12 µs);
        the dispatched topic's keys are the units' ids, a few hundred, so each is hashed once."""
        if key is None:
            return int(self._partitioner(key, partitions, partitions))
        index = self._partition_index.get((key, len(partitions)))
        if index is None:
            if len(self._partition_index) >= PARTITION_MEMO_SIZE:
                self._partition_index.clear()  # dead letters' keys are any publisher's: bounded
            index = (murmur2(key) & 0x7FFFFFFF) % len(partitions)
            self._partition_index[key, len(partitions)] = index
        return partitions[index]


class TransactionsUnavailable(ConfigurationError, RuntimeError):
    """The broker cannot run Kafka transactions (exactly-once mode cannot start)."""


async def check_transactions(settings: Settings, timeout_s: float = 30.0) -> None:
    """Start and stop a transactional producer: raises TransactionsUnavailable with the reason."""
    producer = new_producer(
        settings, transactional_id=f"{settings.consumer_group}-check-{uuid.uuid4().hex[:8]}"
    )
    try:
        await asyncio.wait_for(producer.start(), timeout_s)
        async with producer.transaction():
            pass
    except (KafkaError, TimeoutError, OSError) as exc:
        raise TransactionsUnavailable(
            f"the broker at {settings.bootstrap_servers} did not start a Kafka transaction "
            f"({type(exc).__name__}: {str(exc)[:200]}): processing_guarantee exactly_once needs a broker "
            "with transactions (Apache Kafka); use at_least_once on this one"
        ) from exc
    finally:
        await producer.stop()
