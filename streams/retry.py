"""How every loop of the worker meets a failure: wait out a transient one, isolate a permanent one.

The intake consumer, the commands agent and the outbox relay all go through ``settle``.
A transient failure (services.failures: database or broker unreachable, timeouts,
deadlocks, serialization failures) keeps the work in hand: it is retried with capped
backoff for as long as it takes, and the log and ``wo_worker_waiting`` say what the
worker waits for. A permanent failure splits the work in halves, again and again, until
the items that fail are alone; each is handed to ``give_up`` (a dead letter, a refusal)
with the error, and the rest goes on. Nothing is lost and nothing stops the loop: every
effect of the work is idempotent, so running part of it again is safe.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from enum import StrEnum
from typing import TypeVar

import structlog

from services.failures import error_name, transient, transient_detail
from streams import metrics

log = structlog.get_logger(__name__)

RETRY_FIRST_DELAY_S = 0.5
RETRY_MAX_DELAY_S = 30.0

Item = TypeVar("Item")
Batch = TypeVar("Batch")
Outcome = TypeVar("Outcome")


class Loop(StrEnum):
    """The worker's loops that retry (a metric label)."""

    intake = "intake"
    commands = "commands"
    outbox = "outbox"


async def until_done(
    process: Callable[[Batch], Awaitable[Outcome]],
    batch: Batch,
    loop: Loop = Loop.intake,
    *,
    first_delay_s: float = RETRY_FIRST_DELAY_S,
) -> Outcome:
    """``process(batch)``, retried with backoff while it fails transiently; a permanent
    failure is raised at once. A database or broker outage pauses the loop here."""
    delay = first_delay_s
    waited: set[str] = set()
    for attempt in itertools.count(1):
        try:
            outcome = await process(batch)
        except Exception as exc:
            waiting_for = transient(exc)
            if waiting_for is None:
                raise
            waited.add(waiting_for.value)
            if loop is Loop.intake:
                metrics.INTAKE_BATCH_FAILURES.inc()
            metrics.WORKER_WAITING.labels(loop.value, waiting_for.value).set(1)
            log.warning(
                f"{loop.value}_batch_failed",  # intake_batch_failed, commands_batch_failed, ...
                loop=loop.value,
                waiting_for=waiting_for.value,
                attempt=attempt,
                retry_in_s=delay,
                error=error_name(exc),
                detail=transient_detail(exc),
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY_S)
            continue
        if waited:
            for waiting_for_value in waited:
                metrics.WORKER_WAITING.labels(loop.value, waiting_for_value).set(0)
            log.info("resumed", loop=loop.value, attempts=attempt)
        return outcome
    raise AssertionError("unreachable")


async def settle(
    process: Callable[[Sequence[Item]], Awaitable[Outcome]],
    items: Sequence[Item],
    give_up: Callable[[Item, BaseException], Awaitable[Outcome]],
    loop: Loop,
    *,
    first_delay_s: float = RETRY_FIRST_DELAY_S,
) -> list[Outcome]:
    """Process ``items``, in order, whatever fails: the outcomes of every part processed and
    of every item given up on (``give_up`` runs for an item that fails alone)."""
    outcomes: list[Outcome] = []
    parts: list[Sequence[Item]] = [items]
    while parts:
        part = parts.pop()
        try:
            outcomes.append(await until_done(process, part, loop, first_delay_s=first_delay_s))
        except Exception as exc:
            if len(part) > 1:
                middle = len(part) // 2
                parts += [part[middle:], part[:middle]]  # the first half is popped first
                continue
            metrics.UNPROCESSABLE.labels(loop.value).inc()
            log.error("unprocessable", loop=loop.value, error=error_name(exc))
            outcome = await _give_up(give_up, part[0], exc, loop, first_delay_s)
            if outcome is not None:
                outcomes.append(outcome)
    return outcomes


async def _give_up(
    give_up: Callable[[Item, BaseException], Awaitable[Outcome]],
    item: Item,
    error: BaseException,
    loop: Loop,
    first_delay_s: float,
) -> Outcome | None:
    """``give_up(item, error)``, waiting out transient failures; if it fails permanently too,
    the item is left behind with an error in the log (the loop must go on)."""

    async def record(one: Item) -> Outcome:
        return await give_up(one, error)

    try:
        return await until_done(record, item, loop, first_delay_s=first_delay_s)
    except Exception as exc:
        log.error("unprocessable_not_recorded", loop=loop.value, error=error_name(exc))
        return None
