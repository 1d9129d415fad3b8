"""Retrying a batch until it is done: a database or broker outage pauses the stream."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from streams.metrics import INTAKE_BATCH_FAILURES

log = structlog.get_logger(__name__)

RETRY_FIRST_DELAY_S = 0.5
RETRY_MAX_DELAY_S = 30.0

Batch = TypeVar("Batch")
Outcome = TypeVar("Outcome")


async def until_done(process: Callable[[Batch], Awaitable[Outcome]], batch: Batch) -> Outcome:
    """Retry a failed batch with backoff: its offsets are not committed meanwhile.

    A database or broker outage pauses intake here instead of losing the batch. Every
    effect of a batch is idempotent, so a retry after a partial success is safe.
    """
    delay = RETRY_FIRST_DELAY_S
    for attempt in itertools.count(1):
        try:
            return await process(batch)
        except Exception as exc:
            INTAKE_BATCH_FAILURES.inc()
            log.error(
                "intake_batch_failed",
                attempt=attempt,
                retry_in_s=delay,
                error=type(exc).__name__,
                detail=str(exc)[:500],
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY_S)
    raise AssertionError("unreachable")
