"""Surviving outages: the one place that retries the worker's work and says what it waits for.

Every background task of the worker (the escalation check, the outbox relay, the start-up
re-publish, deadline recounts, the topic check, the lag offsets) runs through
:func:`every` or :func:`until_done`, and so do the intake and command batches. A failure
never reaches faust: it is classified (database, broker, topics, unexpected), counted in
``wo_worker_retries_total{task,on}``, shown in ``wo_worker_waiting{on}`` while the task
waits, logged once when the task starts waiting and once when it resumes (not per
retry), and retried after a capped backoff. The open/overdue gauges are read when
Prometheus scrapes; their failures go through the same :class:`Outage` record.

Only cancellation (the worker stopping) ends a task; a stopping worker wakes the sleeping
ones (see ``stopping``) so SIGTERM is not held up by a backoff.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TypeVar

import structlog
from prometheus_client import Counter, Gauge

from workorder_pipeline.schemas.errors import Interrupted
from workorder_pipeline.services.failures import error_name, transient, transient_detail

log = structlog.get_logger(__name__)

#: Backoff between attempts: 0.5 s doubling to 3 s. The cap is short so that work resumes
#: within a few seconds of the database or broker returning (intake: within 5 s).
RETRY_FIRST_DELAY_S = 0.5
RETRY_MAX_DELAY_S = 3.0


class Task(StrEnum):
    """The worker's work that survives outages (``task`` label)."""

    intake = "intake"
    commands = "commands"
    escalations = "escalations"
    notifications = "notifications"
    outbox = "outbox"
    republish = "republish"
    deadlines = "deadlines"
    retention = "retention"
    reports = "reports"
    order_gauges = "order_gauges"
    platform_gauges = "platform_gauges"
    figure_gauges = "figure_gauges"
    topics = "topics"
    lag = "lag"
    embedded_broker = "embedded_broker"


class WaitingOn(StrEnum):
    """What a failed attempt was waiting for (``on`` label)."""

    database = "database"
    broker = "broker"
    #: A connection or a timeout of another kind (services.failures.WaitingFor.network).
    network = "network"
    #: Another worker opened an order for a dedupe key of the batch first: the batch is
    #: done again and merges into it (services.failures.WaitingFor.conflict).
    conflict = "conflict"
    #: The broker answers but the worker's topics are missing or changed (see topic_watch).
    topics = "topics"
    #: Anything else (a bug, bad data): still retried, logged with its traceback.
    unexpected = "unexpected"


class TopicsNotReady(Interrupted):
    """The worker's topics are not as it expects: nothing may be produced or consumed."""


WAITING = Gauge(
    "wo_worker_waiting",
    "Tasks of this worker now waiting (retrying with backoff) for the database, the broker, "
    "its topics, or after an unexpected error; 0 when all is well.",
    ["on"],
)
RETRIES = Counter(
    "wo_worker_retries_total",
    "Failed attempts of the worker's tasks (each is retried after a backoff), by task and cause.",
    ["task", "on"],
)
for _on in WaitingOn:
    WAITING.labels(on=_on.value)


def classify(exc: BaseException) -> WaitingOn:
    """What a failure waits for (services.failures decides what is transient); anything
    else is ``unexpected``: a batch gives it up (streams/retry), a background task retries."""
    if isinstance(exc, TopicsNotReady):
        return WaitingOn.topics
    waiting_for = transient(exc)
    return WaitingOn(waiting_for.value) if waiting_for is not None else WaitingOn.unexpected


class Outage:
    """One task's record of its failures: says when it starts and stops waiting (once per
    change of state), counts each failed attempt and gives the backoff before the next."""

    def __init__(self, task: Task, max_delay_s: float = RETRY_MAX_DELAY_S) -> None:
        self.task = task
        self._max_delay_s = max_delay_s
        self._delay_s = RETRY_FIRST_DELAY_S
        self.on: WaitingOn | None = None
        #: What the last failure was (an unexpected error of another type is said again).
        self._cause: tuple[WaitingOn, str] | None = None
        self._since = 0.0
        self._attempts = 0

    def failed(self, exc: BaseException) -> float:
        """Record a failed attempt; returns how long to wait before the next one."""
        on = classify(exc)
        RETRIES.labels(task=self.task.value, on=on.value).inc()
        self._attempts += 1
        cause = (on, type(exc).__name__ if on is WaitingOn.unexpected else "")
        if cause != self._cause:
            if self.on is not None:
                WAITING.labels(on=self.on.value).dec()
            else:
                self._since = time.monotonic()
            WAITING.labels(on=on.value).inc()
            self.on, self._cause = on, cause
            # The error's class, and for a transient one the driver's own first line (a host, a
            # timeout): never a message that may quote values (personal data).
            event = {"task": self.task.value, "on": on.value, "error": error_name(exc)}
            if on is WaitingOn.unexpected:
                log.error("worker_waiting", **event, where=_where(exc))
            else:
                log.warning("worker_waiting", **event, detail=transient_detail(exc))
        delay = self._delay_s
        self._delay_s = min(self._delay_s * 2, self._max_delay_s)
        return delay

    def succeeded(self) -> None:
        """Record a success: the end of an outage, if there was one."""
        self._delay_s = RETRY_FIRST_DELAY_S
        if self.on is None:
            return
        WAITING.labels(on=self.on.value).dec()
        log.info(
            "worker_resumed",
            task=self.task.value,
            on=self.on.value,
            waited_s=round(time.monotonic() - self._since, 1),
            failed_attempts=self._attempts,
        )
        self.on, self._cause = None, None
        self._attempts = 0

    def close(self) -> None:
        """The task ends (the worker stops): it no longer waits for anything."""
        if self.on is not None:
            WAITING.labels(on=self.on.value).dec()
            self.on, self._cause = None, None


class Stopped(Interrupted):
    """The worker is stopping: the work was left undone (it is done again later)."""


Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


async def until_done(
    task: Task,
    process: Callable[[Item], Awaitable[Outcome]],
    item: Item,
    stopping: asyncio.Event | None = None,
    *,
    permanent_raises: bool = False,
) -> Outcome:
    """``process(item)`` retried after each failure until it succeeds. Every effect of our
    batches is idempotent, so a retry after a partial success is safe. Raises
    :class:`Stopped` when ``stopping`` is set while waiting to retry. ``permanent_raises``:
    a failure that is not transient is raised at once (streams/retry isolates it)."""
    outage = Outage(task)
    try:
        while True:
            try:
                outcome = await process(item)
            except (Exception, asyncio.CancelledError) as exc:
                _reraise_if_cancelled(exc)
                if permanent_raises and classify(exc) is WaitingOn.unexpected:
                    raise
                delay = outage.failed(exc)
            else:
                outage.succeeded()
                return outcome
            if await _sleep(delay, stopping):
                raise Stopped(task.value)
    finally:
        outage.close()


async def every(
    task: Task,
    interval_s: float,
    job: Callable[[], Awaitable[object]],
    when: Callable[[], bool] = lambda: True,
    stopping: asyncio.Event | None = None,
) -> None:
    """Run ``job`` every ``interval_s`` (when ``when()`` says so, e.g. on the leader only)
    until ``stopping`` is set or the task is cancelled; a failed run is retried after a
    backoff (at most ``interval_s``), never raised."""
    outage = Outage(task, max_delay_s=min(RETRY_MAX_DELAY_S, interval_s))
    try:
        while True:
            delay = interval_s
            if not _asks(when):
                outage.close()  # not its turn (another worker leads): it waits for nothing
            else:
                try:
                    await job()
                except (Exception, asyncio.CancelledError) as exc:
                    _reraise_if_cancelled(exc)
                    delay = outage.failed(exc)
                else:
                    outage.succeeded()
            if await _sleep(delay, stopping):
                return
    finally:
        outage.close()


async def close_quietly(closing: Awaitable[object], timeout_s: float, what: str) -> None:
    """Close a client (a consumer, a producer) that may be talking to a broker that is gone:
    wait at most ``timeout_s``, never raise. It runs as a task of its own: aiokafka's
    consumer.stop() lets the CancelledError of its own fetch tasks escape (aiokafka 0.14)."""
    closer = asyncio.ensure_future(closing)
    done, _ = await asyncio.wait({closer}, timeout=timeout_s)
    if not done:
        closer.cancel()
        log.warning("client_close_incomplete", client=what, after_s=timeout_s)
    elif not closer.cancelled() and closer.exception() is not None:
        log.warning("client_close_incomplete", client=what, error=type(closer.exception()).__name__)


def _where(exc: BaseException) -> str:
    """Where an unexpected error was raised (file:line of the innermost frame), for a bug report."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""


def _asks(when: Callable[[], bool]) -> bool:
    try:
        return when()
    except Exception:  # e.g. faust's leadership asked during a rebalance: not now
        return False


def _reraise_if_cancelled(exc: BaseException) -> None:
    """A CancelledError is ours to obey only when this task is being cancelled (the worker
    stops); one that leaks out of a client library (aiokafka, stopping a consumer) is a
    failure like any other."""
    if isinstance(exc, asyncio.CancelledError):
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise exc


async def _sleep(seconds: float, stopping: asyncio.Event | None) -> bool:
    """Sleep; True (at once) if ``stopping`` is or becomes set."""
    if stopping is None:
        await asyncio.sleep(seconds)
        return False
    if stopping.is_set():
        return True
    try:
        await asyncio.wait_for(stopping.wait(), seconds)
    except TimeoutError:
        return False
    return True
