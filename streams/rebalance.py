"""What a batch consumer does when the group moves partitions (streams/batch_consumer.py):
the batch in hand is finished and committed before partitions are taken away, and where the
group left the partitions given is learned before reading them."""

from __future__ import annotations

from typing import Protocol

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from workorder_pipeline.streams.resilience import Task

log = structlog.get_logger(__name__)


class Rebalanced(Protocol):
    @property
    def task_name(self) -> Task: ...

    async def finish_before_revoke(self, revoked: set[TopicPartition]) -> None: ...

    async def learn_committed(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None: ...


class FinishBatchFirst(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: Rebalanced, consumer: AIOKafkaConsumer) -> None:
        self._owner = owner
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._owner.finish_before_revoke(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._owner.learn_committed(self._consumer, assigned)
        partitions = sorted(f"{tp.topic}/{tp.partition}" for tp in assigned)
        log.info(f"{self._owner.task_name.value}_partitions_assigned", partitions=partitions)
