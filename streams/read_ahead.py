"""The next batch, taken and prepared while the batch in hand is published and marked.

A batch's storing is the worker's CPU; its publishing and dispatched mark are mostly waits
on the broker and PostgreSQL (about a quarter of a full batch's time, bench/README.md). The
next batch's CPU-only first step, its admission (decoding and validation,
``Intake.admit``: nothing stored is read), runs meanwhile in a thread. Nothing the database
sees changes order: the next batch is recorded only after the batch in hand is marked and
its offsets committed, exactly as if it had been read then.

Only what the consumer has already fetched is taken (never waiting on the broker), only at
the batch interval (a worker under light load keeps its batches whole), and a batch taken
ahead is always the loop's next batch: its records have left the consumer's buffer, so
dropping it would skip them (it is dropped only with the consumer itself, whose successor
reads from the committed offsets).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from workorder_pipeline.services.failures import error_name
from workorder_pipeline.services.intake import InboundMessage

log = structlog.get_logger(__name__)

Fetched = dict[TopicPartition, list[Any]]


@dataclass(frozen=True, slots=True)
class TakenAhead:
    fetched: Fetched
    #: The messages of ``fetched``, as the batch loop hands them on.
    messages: list[InboundMessage]
    #: The group's assignment count when they were read (exactly once: read again if it moved).
    assignments: int


class ReadAhead:
    def __init__(
        self,
        to_messages: Callable[[Fetched], list[InboundMessage]],
        prepare: Callable[[list[InboundMessage]], Awaitable[object]],
        max_records: int,
    ) -> None:
        self._to_messages = to_messages
        self._prepare = prepare
        self._max_records = max_records
        self._taking: asyncio.Task[TakenAhead | None] | None = None
        self._prepared: tuple[list[InboundMessage], object] | None = None

    def start(self, consumer: AIOKafkaConsumer, assignments: int) -> None:
        """Take the next batch from what ``consumer`` holds, and prepare it, in the background."""
        if self._taking is None:
            self._taking = asyncio.create_task(self._take(consumer, assignments))

    async def taken(self) -> TakenAhead | None:
        """The batch taken ahead, once prepared (None: there was none to take)."""
        taking, self._taking = self._taking, None
        return await taking if taking is not None else None

    def prepared(self, messages: Sequence[InboundMessage]) -> object | None:
        """What ``prepare`` made of exactly this list of messages, once (None: nothing). Kept
        for its own batch while parts of the batch in hand ask (a failure being isolated)."""
        if self._prepared is None or self._prepared[0] is not messages:
            return None
        prepared, self._prepared = self._prepared[1], None
        return prepared

    async def drop(self) -> None:
        """The consumer is closing: whatever was taken goes with it."""
        taking, self._taking = self._taking, None
        self._prepared = None
        if taking is not None:
            taking.cancel()
            with contextlib.suppress(BaseException):
                await taking

    async def _take(self, consumer: AIOKafkaConsumer, assignments: int) -> TakenAhead | None:
        try:
            fetched = await consumer.getmany(timeout_ms=0, max_records=self._max_records)
        except Exception as exc:  # the loop's own read meets it again, and waits it out
            log.debug("read_ahead_failed", error=error_name(exc))
            return None
        messages = self._to_messages(fetched)
        if not messages:
            return None
        try:
            self._prepared = (messages, await self._prepare(messages))
        except Exception as exc:  # prepared again in the batch, where a failure is handled
            log.warning("read_ahead_not_prepared", error=error_name(exc))
        return TakenAhead(fetched, messages, assignments)
