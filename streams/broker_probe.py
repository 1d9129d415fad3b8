"""A read-only look at the broker, for the topic check and the lag gauge.

Its own aiokafka clients (an admin client and a consumer without a group), so asking
never disturbs the intake consumer's fetching or faust's, and never creates a topic
(streams/no_auto_create). A failed request drops the clients; the next call makes new ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import mode
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import for_code

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.streams.kafka.security import aiokafka_options
from workorder_pipeline.streams.resilience import close_quietly

#: A question to the broker that takes longer fails (and is retried later).
REQUEST_TIMEOUT_MS = 5000
CLOSE_WAIT_S = 3.0
#: How long the end-offset fetch may wait for the broker's answer.
FETCH_WAIT_MS = 1000
_UNKNOWN_TOPIC = 3


class BrokerProbe(mode.Service):
    """Its clients are closed when the worker stops: a broker (Tansu) holds its own exit
    for clients still connected."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._settings = settings
        self._admin: AIOKafkaAdminClient | None = None
        self._offsets: AIOKafkaConsumer | None = None

    async def partition_counts(self, topics: Iterable[str]) -> dict[str, int]:
        """Partitions of each of ``topics`` the broker has (a missing topic is left out)."""
        try:
            admin = await self._admin_client()
            described: list[dict[str, Any]] = await admin.describe_topics(sorted(set(topics)))
        except BaseException:
            await self.close()
            raise
        found = {}
        for topic in described:
            if topic["error_code"] == _UNKNOWN_TOPIC:
                continue
            if topic["error_code"] != 0:
                raise for_code(topic["error_code"])(f"describing topic {topic['topic']}")
            found[str(topic["topic"])] = len(topic["partitions"])
        return found

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Each partition's log end offset, asked of its leader now.

        Asked twice: ListOffsets, then a fetch from just before that offset, whose answer
        carries the partition's high watermark. Tansu 0.6.0 answers ListOffsets(latest) with
        the first offset of the newest record batch plus one (100 records in one batch: 1,
        where the fetch says 100); Kafka answers both the same.
        """
        if not partitions:
            return {}
        try:
            consumer = await self._offsets_consumer()
            listed: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
            consumer.assign(partitions)
            for tp in partitions:
                consumer.seek(tp, max(0, listed[tp] - 1))
            await consumer.getmany(*partitions, timeout_ms=FETCH_WAIT_MS)
            return {tp: max(listed[tp], consumer.highwater(tp) or 0) for tp in partitions}
        except BaseException:
            await self.close()
            raise

    async def committed(self, group: str, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """The group's committed offset of each partition (0: nothing committed)."""
        if not partitions:
            return {}
        try:
            admin = await self._admin_client()
            offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
        except BaseException:
            await self.close()
            raise
        found = {}
        for tp in partitions:
            position = offsets.get(tp)
            found[tp] = max(0, position.offset) if position is not None else 0
        return found

    async def on_stop(self) -> None:
        await self.close()

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        consumer, self._offsets = self._offsets, None
        if admin is not None:
            await close_quietly(admin.close(), CLOSE_WAIT_S, "probe admin client")
        if consumer is not None:
            await close_quietly(consumer.stop(), CLOSE_WAIT_S, "probe consumer")

    async def _admin_client(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(
                bootstrap_servers=self._settings.bootstrap_servers,
                client_id="wo-probe",
                request_timeout_ms=REQUEST_TIMEOUT_MS,
                **aiokafka_options(self._settings),
            )
            try:
                await admin.start()
            except BaseException:
                await close_quietly(admin.close(), CLOSE_WAIT_S, "probe admin client")
                raise
            self._admin = admin
        return self._admin

    async def _offsets_consumer(self) -> AIOKafkaConsumer:
        if self._offsets is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._settings.bootstrap_servers,
                group_id=None,
                client_id="wo-probe",
                enable_auto_commit=False,
                request_timeout_ms=REQUEST_TIMEOUT_MS,
                fetch_max_wait_ms=100,
                max_partition_fetch_bytes=64 * 1024,  # one batch per partition is enough
                **aiokafka_options(self._settings),
            )
            try:
                await consumer.start()
            except BaseException:
                await close_quietly(consumer.stop(), CLOSE_WAIT_S, "probe consumer")
                raise
            self._offsets = consumer
        return self._offsets
