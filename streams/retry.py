"""Batches whose failures must not stop their loop: a permanent failure is isolated.

The intake consumer, the commands agent and the outbox relay process their batches through
``settle``. A transient failure (services.failures: database or broker unreachable,
timeouts, deadlocks, serialization failures) is waited out by streams.resilience (the batch
is kept, retried with capped backoff, ``wo_worker_waiting`` says what it waits for). A
permanent failure splits the batch in halves, again and again, until the items that fail
are alone; each is handed to ``give_up`` (a dead letter, a refusal) with the error, and the
rest goes on. Every effect of a batch is idempotent, so running part of it again is safe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import structlog

from workorder_pipeline.services.failures import error_name
from workorder_pipeline.streams import metrics
from workorder_pipeline.streams.resilience import Stopped, Task, until_done

log = structlog.get_logger(__name__)

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


async def settle(
    task: Task,
    process: Callable[[Sequence[Item]], Awaitable[Outcome]],
    items: Sequence[Item],
    give_up: Callable[[Item, BaseException], Awaitable[Outcome]],
    stopping: asyncio.Event | None = None,
) -> list[Outcome]:
    """Process ``items``, in order, whatever fails: the outcomes of every part processed and
    of every item given up on (``give_up`` runs for an item that fails alone). Raises
    streams.resilience.Stopped when ``stopping`` is set while a part waits out an outage."""
    outcomes: list[Outcome] = []
    parts: list[Sequence[Item]] = [items]
    while parts:
        part = parts.pop()
        try:
            outcomes.append(await until_done(task, process, part, stopping, permanent_raises=True))
        except Stopped:
            raise
        except Exception as exc:
            if len(part) > 1:
                middle = len(part) // 2
                parts += [part[middle:], part[:middle]]  # the first half is popped first
                continue
            metrics.UNPROCESSABLE.labels(task.value).inc()
            log.error("unprocessable", task=task.value, error=error_name(exc))
            outcome = await _give_up(task, give_up, part[0], exc, stopping)
            if outcome is not None:
                outcomes.append(outcome)
    return outcomes


async def _give_up(
    task: Task,
    give_up: Callable[[Item, BaseException], Awaitable[Outcome]],
    item: Item,
    error: BaseException,
    stopping: asyncio.Event | None,
) -> Outcome | None:
    """``give_up(item, error)``, waiting out transient failures; if it fails permanently too,
    the item is left behind with an error in the log (the loop must go on)."""

    async def record(one: Item) -> Outcome:
        return await give_up(one, error)

    try:
        return await until_done(task, record, item, stopping, permanent_raises=True)
    except Stopped:
        raise
    except Exception as exc:
        log.error("unprocessable_not_recorded", task=task.value, error=error_name(exc))
        return None
