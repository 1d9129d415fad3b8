"""Exactly-once commands: ``workorders.commands`` -> command handler -> lifecycle, dispatched
and dead-letter topics, published in one Kafka transaction with the commands' offsets.

Used instead of the faust commands agent (streams/app.py) when ``WO_PROCESSING_GUARANTEE``
is exactly_once: faust commits offsets itself, outside any transaction. It is the intake's
consuming loop (streams/batch_consumer.py) with the commands group and topic. A batch is
handled partition by partition (each partition's offsets commit in its own producer's
transaction: streams/transactions.py): each part in one database transaction that stores
its announcements in the outbox with each command's position, already marked published;
then the announcements, dead letters and offsets commit in one Kafka transaction. A crash
between the two re-delivers the commands; the handler finds their positions in the outbox
and returns the stored announcements again without handling the commands again
(services/commands.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog
from aiokafka import TopicPartition

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.services.commands import CommandHandler, CommandResult
from workorder_pipeline.services.failures import error_name
from workorder_pipeline.services.intake import InboundMessage
from workorder_pipeline.services.ports import OutboxTopic
from workorder_pipeline.streams import metrics
from workorder_pipeline.streams.batch_consumer import BatchConsumer
from workorder_pipeline.streams.outputs import Committer, Message, Outputs
from workorder_pipeline.streams.resilience import Task
from workorder_pipeline.streams.transactions import next_offsets

log = structlog.get_logger(__name__)


class CommandConsumer(BatchConsumer):
    task_name = Task.commands
    committer = Committer.commands

    def __init__(
        self,
        settings: Settings,
        commands: CommandHandler,
        outputs: Outputs,
        clock: Callable[[], datetime],
        **kwargs: Any,
    ) -> None:
        super().__init__(settings, outputs, clock, **kwargs)
        self._commands = commands

    def _topics(self) -> list[str]:
        return [self._settings.topics.commands]

    def _messages(self, fetched: dict[TopicPartition, list[Any]]) -> list[InboundMessage]:
        """The records fetched, with their headers (a command's signature travels in them)."""
        return [
            InboundMessage(
                r.topic, r.partition, r.offset, r.key, r.value, r.timestamp, record_headers(r.headers)
            )
            for records in fetched.values()
            for r in records
        ]

    def _group(self) -> str:
        return self._settings.commands_consumer_group

    def _groups(self, messages: list[InboundMessage]) -> list[list[InboundMessage]]:
        """Partition by partition: a command's announcements go out in the transaction of its
        own partition, and one database transaction's outputs in one Kafka transaction."""
        by_partition: dict[tuple[str, int], list[InboundMessage]] = {}
        for message in messages:
            by_partition.setdefault((message.topic, message.partition), []).append(message)
        return list(by_partition.values())

    async def _process(self, messages: Sequence[InboundMessage]) -> tuple[CommandResult, dict[str, int]]:
        started = time.monotonic()
        result = await asyncio.to_thread(self._commands.handle, messages, self._clock())
        stored = time.monotonic()
        await self._publish_committing(result, next_offsets(messages))
        steps = {
            "stored_ms": round((stored - started) * 1000),
            "published_ms": round((time.monotonic() - started) * 1000),
        }
        return result, steps

    async def _set_aside(
        self, message: InboundMessage, error: BaseException
    ) -> tuple[CommandResult, dict[str, int]]:
        """A command that failed alone, permanently: refused where it can be recorded and
        dead-lettered, in a transaction with its offset; the next command goes on."""
        result = await asyncio.to_thread(
            self._commands.unprocessable, message, error_name(error), self._clock()
        )
        await self._publish_committing(result, next_offsets([message]))
        return result, {}

    async def _publish_committing(self, result: CommandResult, offsets: Mapping[TopicPartition, int]) -> None:
        messages = announcements(self._settings, result) + self._outputs.messages((), result.dead_letters)
        if len(offsets) != 1:
            raise ValueError("a command part spans partitions: its announcements have no one transaction")
        ((tp, offset),) = offsets.items()
        await self._commit_transactions({tp: (messages, offset)})

    def _done(self, parts: list[tuple[Any, dict[str, int]]], size: int, done_s: float) -> None:
        for result, _ in parts:
            metrics.record_commands(result)
            log_commands(result)


def announcements(settings: Settings, result: CommandResult) -> list[Message]:
    """The outbox rows a command batch wrote (or wrote before), as messages to publish."""
    topics = {
        OutboxTopic.lifecycle: settings.topics.lifecycle,
        OutboxTopic.dispatched: settings.topics.dispatched,
    }
    return [
        (topics[OutboxTopic(topic)], key.encode(), payload.encode())
        for topic, key, payload in result.announcements
    ]


def log_commands(result: CommandResult) -> None:
    for outcome in result.outcomes:
        log.info(
            "command",
            command_id=outcome.command.command_id,
            work_order_id=outcome.command.work_order_id,
            action=outcome.command.action.value,
            outcome=outcome.outcome,
            reason=outcome.refusal.reason if outcome.refusal else None,
        )


def record_headers(raw: Any) -> tuple[tuple[str, bytes], ...]:
    """A record's headers as (name, bytes) pairs, whether faust gives a mapping or pairs."""
    if not raw:
        return ()
    pairs = raw.items() if isinstance(raw, Mapping) else raw
    return tuple(
        (name.decode() if isinstance(name, bytes) else str(name), _header_bytes(value))
        for name, value in pairs
    )


def _header_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    return value.encode() if isinstance(value, str) else bytes(value)
