"""Producing the load and reading what the pipeline dispatched."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from benchkit.common import AlarmStream, Message

# --- Kafka helpers -----------------------------------------------------------------------


async def produce_backlog(bootstrap: str, topic: str, messages: Sequence[Message], partitions: int) -> None:
    """Send ``messages`` in batches per partition (key-hashed like the default partitioner)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=-1, linger_ms=5)
    await producer.start()
    try:
        partitioner = DefaultPartitioner()
        everything = list(range(partitions))
        by_partition: dict[int, list[Message]] = {}
        for message in messages:
            by_partition.setdefault(partitioner(message.key, everything, everything), []).append(message)
        pending = []
        for partition, items in by_partition.items():
            batch = producer.create_batch()
            for message in items:
                if batch.append(key=message.key, value=message.value, timestamp=None) is None:
                    pending.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=message.key, value=message.value, timestamp=None)
            pending.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def produce_one_per_partition(bootstrap: str, topic: str, messages: Sequence[Message]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=-1)
    await producer.start()
    try:
        for partition, message in enumerate(messages):
            await producer.send_and_wait(topic, message.value, key=message.key, partition=partition)
    finally:
        await producer.stop()


@dataclass
class PacedResult:
    sent: int
    seconds: float
    #: New alarm id -> ms timestamp it was sent with.
    sent_ms: dict[str, int]


async def produce_paced(
    bootstrap: str, topic: str, stream: AlarmStream, rate: float, duration_s: float
) -> PacedResult:
    """Offer ``rate`` messages/s for ``duration_s``, each stamped with its send time."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=-1, linger_ms=0)
    await producer.start()
    sent_ms: dict[str, int] = {}
    sent = 0
    pending: list[Any] = []
    try:
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < duration_s:
            due = int(elapsed * rate)
            while sent < due:
                message = stream.next()
                now_ms = int(time.time() * 1000)
                pending.append(
                    await producer.send(topic, message.value, key=message.key, timestamp_ms=now_ms)
                )
                if message.new_alarm is not None:
                    sent_ms[message.new_alarm] = now_ms
                sent += 1
            if len(pending) > 5000:
                await asyncio.gather(*pending)
                pending.clear()
            await asyncio.sleep(0.005)
        await asyncio.gather(*pending)
        return PacedResult(sent, time.monotonic() - started, sent_ms)
    finally:
        await producer.stop()


class DispatchedReader:
    """Collects (alarm id, dispatched timestamp) from the dispatched topic in the background."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.partitions = partitions
        self.dispatched_ms: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._consumer: Any = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=50
        )
        await self._consumer.start()
        # Not partitions_for_topic(): Apache Kafka gives a consumer with no subscription no
        # metadata of the topic until it asks (Tansu's first answer lists every topic).
        partitions = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for partition in partitions:  # resolve the end positions now, before the load starts
            await self._consumer.position(partition)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batches.values():
                for record in records:
                    for source_id in json.loads(record.value)["source_ids"]:
                        alarm_id = source_id.rpartition("/")[2]
                        self.dispatched_ms.setdefault(alarm_id, record.timestamp)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
