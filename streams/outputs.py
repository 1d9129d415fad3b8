"""The worker's producer: every message it publishes goes through ``Outputs``.

Dispatched orders, dead letters, lifecycle events and escalations all leave through one
aiokafka producer (acks from every in-sync replica). ``send`` returns once the message is
queued; awaiting what it returns waits until the broker has it, so a caller can queue a
whole batch and then wait once.

While the topic check (streams/topic_watch) finds the topics not as expected, the gate is
shut: every send raises ``TopicsNotReady`` (the caller retries), and when it opens again
a new producer is made (the old one's metadata describes the lost topics).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any

import mode
from aiokafka import AIOKafkaProducer
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import DefaultPartitioner

from config.settings import Settings
from schemas.deadletter import DeadLetter
from schemas.workorder import WorkOrder
from streams.resilience import TopicsNotReady, close_quietly

#: Room for a dead letter: the original message, base64-encoded (4/3), plus the envelope.
_ENVELOPE_BYTES = 64 * 1024
#: How long stopping a producer may take (flushing to a broker that may be gone).
STOP_WAIT_S = 3.0


def aiokafka_security(settings: Settings) -> dict[str, Any]:
    """The Kafka security settings in aiokafka's keywords (it takes an SSL context, not files)."""
    options = settings.kafka_client_options()
    found: dict[str, Any] = {"security_protocol": options["security_protocol"]}
    if options["security_protocol"].endswith("SSL"):
        found["ssl_context"] = create_ssl_context(
            cafile=options.get("ssl_cafile"),
            certfile=options.get("ssl_certfile"),
            keyfile=options.get("ssl_keyfile"),
        )
    for name in ("sasl_mechanism", "sasl_plain_username", "sasl_plain_password"):
        if name in options:
            found[name] = options[name]
    return found


class Outputs(mode.Service):
    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._settings = settings
        self._producer: AIOKafkaProducer | None = None
        self._starting = asyncio.Lock()
        self._partitioner = DefaultPartitioner()
        self._shut = False

    async def on_start(self) -> None:
        await self._ensure_producer()

    async def on_stop(self) -> None:
        await self._drop_producer()

    async def shut(self) -> None:
        """Publish nothing until :meth:`reopen`."""
        self._shut = True
        await self._drop_producer()

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
                producer = AIOKafkaProducer(
                    bootstrap_servers=self._settings.bootstrap_servers,
                    acks="all",
                    linger_ms=5,
                    max_request_size=self._settings.max_message_bytes * 4 // 3 + _ENVELOPE_BYTES,
                    **aiokafka_security(self._settings),
                )
                await producer.start()
                self._producer = producer
            return self._producer

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
        """Queue one message; the awaitable returned completes when the broker has it."""
        producer = await self._ensure_producer()
        sent: Awaitable[Any] = await producer.send(topic, value=value, key=key)
        return sent

    async def publish(self, orders: Iterable[WorkOrder], letters: Iterable[DeadLetter] = ()) -> None:
        """Publish orders (to their unit, and a copy to each unit in ``copied_to``) and dead
        letters, and wait until the broker has them all."""
        topics = self._settings.topics
        messages: list[tuple[str, bytes | None, bytes]] = []
        for letter in letters:
            key = letter.source.key  # base64 in the letter; the Kafka key is the original bytes
            value = letter.model_dump_json(by_alias=True).encode()
            messages.append((topics.dead_letters, base64.b64decode(key) if key is not None else None, value))
        for order in orders:
            value = order.dispatch_message().model_dump_json(by_alias=True).encode()
            messages += [(topics.dispatched, unit.encode(), value) for unit in (order.unit, *order.copied_to)]
        await self.send_all(messages)

    async def send_all(self, messages: Sequence[tuple[str, bytes | None, bytes]]) -> None:
        """Send (topic, key, value) messages in order and wait until the broker has them all.

        They go as one record batch per partition (the key picks it, as ``send`` would):
        queueing them one by one cost ~10 µs of CPU each.
        """
        producer = await self._ensure_producer()
        by_partition: dict[tuple[str, int], list[tuple[bytes | None, bytes]]] = {}
        partitions: dict[str, list[int]] = {}
        for topic, key, value in messages:
            if topic not in partitions:
                partitions[topic] = sorted(await producer.partitions_for(topic))
            partition = self._partitioner(key, partitions[topic], partitions[topic])
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
