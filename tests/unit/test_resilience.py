"""streams/resilience: what an operator sees while the worker's work waits out an outage,
and streams/topic_watch.compare: what counts as a topic not as expected."""

from __future__ import annotations

import asyncio
import sqlite3

import aiokafka.errors
import pytest
import sqlalchemy.exc
from structlog.testing import capture_logs

from workorder_pipeline.streams.resilience import (
    RETRIES,
    WAITING,
    Outage,
    Stopped,
    Task,
    TopicsNotReady,
    WaitingOn,
    classify,
    every,
    until_done,
)
from workorder_pipeline.streams.topic_watch import compare


def waiting(on: WaitingOn) -> float:
    return WAITING.labels(on=on.value)._value.get()  # type: ignore[no-any-return]


def retries(task: Task, on: WaitingOn) -> float:
    return RETRIES.labels(task=task.value, on=on.value)._value.get()  # type: ignore[no-any-return]


def database_down() -> Exception:
    return sqlalchemy.exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError("unable to open"))


@pytest.mark.parametrize(
    ("error", "on"),
    [
        (database_down(), WaitingOn.database),
        (aiokafka.errors.KafkaConnectionError("no broker"), WaitingOn.broker),
        (TimeoutError(), WaitingOn.network),  # a timeout of no client in particular
        (TopicsNotReady("missing: t"), WaitingOn.topics),
        (KeyError("bug"), WaitingOn.unexpected),
    ],
)
def test_a_failure_is_put_down_to_what_it_waits_for(error: Exception, on: WaitingOn) -> None:
    assert classify(error) is on


def test_an_outage_is_said_once_when_it_starts_and_once_when_it_ends() -> None:
    outage = Outage(Task.escalations)
    before = waiting(WaitingOn.database), retries(Task.escalations, WaitingOn.database)
    with capture_logs() as logs:
        delays = [outage.failed(database_down()) for _ in range(6)]
        assert waiting(WaitingOn.database) == before[0] + 1
        outage.succeeded()
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]  # capped backoff
    assert [(e["event"], e.get("on")) for e in logs] == [
        ("worker_waiting", "database"),
        ("worker_resumed", "database"),
    ]
    assert logs[1]["failed_attempts"] == 6
    assert waiting(WaitingOn.database) == before[0]
    assert retries(Task.escalations, WaitingOn.database) == before[1] + 6
    assert outage.failed(database_down()) == 0.5  # a new outage starts its backoff afresh


def test_a_change_of_cause_is_said_again() -> None:
    outage = Outage(Task.topics)
    with capture_logs() as logs:
        outage.failed(aiokafka.errors.KafkaConnectionError("no broker"))
        outage.failed(TopicsNotReady("missing: t"))
        outage.failed(KeyError("a"))
        outage.failed(KeyError("b"))
        outage.failed(ValueError("c"))
        outage.close()
    assert [e["on"] for e in logs] == ["broker", "topics", "unexpected", "unexpected"]
    assert logs[2]["log_level"] == "error"  # an unexpected error comes with its traceback


def test_a_batch_is_retried_until_it_is_done() -> None:
    attempts: list[int] = []

    async def store(batch: list[int]) -> int:
        attempts.append(len(attempts))
        if len(attempts) < 3:
            raise database_down()
        return sum(batch)

    async def run() -> int:
        return await until_done(Task.intake, store, [1, 2, 3])

    assert asyncio.run(run()) == 6
    assert len(attempts) == 3


def test_a_stopping_worker_abandons_the_batch_at_once() -> None:
    async def never(batch: None) -> None:
        raise database_down()

    async def run() -> float:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.call_later(0.2, stopping.set)
        started = loop.time()
        with pytest.raises(Stopped):
            await until_done(Task.intake, never, None, stopping)
        return loop.time() - started

    assert asyncio.run(run()) < 1.0  # not the backoff's 0.5 + 1 + 2 s


def test_a_periodic_job_never_raises_and_keeps_its_interval() -> None:
    runs: list[str] = []

    async def job() -> None:
        runs.append("run")
        if len(runs) in (2, 3):
            raise KeyError("a bug in one run")

    async def run() -> None:
        stopping = asyncio.Event()
        asyncio.get_running_loop().call_later(2.5, stopping.set)
        await every(Task.outbox, 0.5, job, stopping=stopping)

    asyncio.run(run())
    assert len(runs) >= 4  # it went on after the failures


def test_a_periodic_job_runs_only_when_asked_to() -> None:
    runs: list[str] = []

    async def job() -> None:
        runs.append("run")

    async def run() -> None:
        stopping = asyncio.Event()
        asyncio.get_running_loop().call_later(0.3, stopping.set)
        await every(Task.escalations, 0.1, job, when=lambda: False, stopping=stopping)

    asyncio.run(run())
    assert runs == []


def test_topics_missing_or_with_another_partition_count_are_not_as_expected() -> None:
    expected = {"a": 6, "b": 6, "c": 1}
    assert not compare(expected, {"a": 6, "b": 6, "c": 1, "other": 4})
    difference = compare(expected, {"a": 4, "c": 1})
    assert difference.missing == ("b",)
    assert dict(difference.changed) == {"a": (6, 4)}
    assert len(difference) == 2
    assert difference.describe() == "missing: b; partition count changed: a 6 -> 4"


def test_a_periodic_job_no_longer_asked_to_run_waits_for_nothing() -> None:
    leader = [True]

    async def job() -> None:
        raise database_down()

    async def run() -> tuple[float, float]:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, leader.clear)  # leadership moved to another worker mid-outage
        loop.call_later(0.8, stopping.set)
        before = waiting(WaitingOn.database)
        task = asyncio.ensure_future(
            every(Task.escalations, 0.1, job, when=lambda: bool(leader), stopping=stopping)
        )
        await asyncio.sleep(0.2)
        during = waiting(WaitingOn.database) - before
        await asyncio.sleep(0.4)
        after = waiting(WaitingOn.database) - before
        await task
        return during, after

    assert asyncio.run(run()) == (1, 0)
