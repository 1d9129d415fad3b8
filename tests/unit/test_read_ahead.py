"""The intake loop reads the next batch ahead: its admission overlaps the batch before's
publishing and mark, its recording never does (streams/read_ahead.py).

The loop runs on fakes of the consumer, the intake service and the producer that log each
step with the batch it belongs to; the real thing on Apache Kafka is
tests/integration/test_intake_on_broker.py."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from aiokafka import TopicPartition

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.services.intake import Admission, InboundMessage, IntakeResult
from workorder_pipeline.streams.intake_consumer import IntakeConsumer
from workorder_pipeline.streams.read_ahead import ReadAhead

NOW = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
TP = TopicPartition("alarms", 0)


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None = None


class FakeConsumer:
    """Batches already fetched, as aiokafka holds them; commits are recorded."""

    def __init__(self, batches: int, size: int) -> None:
        self._records = [Record(TP.topic, TP.partition, n, b"k", b"{}") for n in range(batches * size)]
        self.committed: list[int] = []

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Record]]:
        taken, self._records = self._records[:max_records], self._records[max_records:]
        if not taken:
            await asyncio.sleep(timeout_ms / 1000)
        return {TP: taken} if taken else {}

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    async def stop(self) -> None:
        self._records = []

    async def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        self.committed.append(offsets[TP].offset)


class Steps:
    """What happened, in order: (step, first offset of its batch)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.log: list[tuple[str, int]] = []

    def __call__(self, step: str, messages: Sequence[Any]) -> None:
        first = messages[0].offset if messages and hasattr(messages[0], "offset") else -1
        with self._lock:
            self.log.append((step, first))

    def index(self, step: str, batch: int) -> int:
        return self.log.index((step, batch))


@dataclass
class FakeOrder:
    """What the loop reads of an order (its latency is counted once it is dispatched)."""

    offset: int
    kind: SignalKind = SignalKind.vehicle_alarm
    unit: str = "squad-2"
    first_seen_at: datetime = NOW


class FakeIntake:
    """Admits and records in threads (as the real one); the mark is slow, as PostgreSQL's is."""

    def __init__(
        self,
        steps: Steps,
        fail_admit_of: int | None = None,
        poison: int | None = None,
        outage_at: int | None = None,
    ) -> None:
        self.steps = steps
        #: The first offset of a batch whose first recording meets the database gone.
        self.outage_at = outage_at
        self.admit_s = 0.02
        self.fail_admit_of = fail_admit_of
        #: The offset of a message whose recording always fails (a permanent failure).
        self.poison = poison
        self.set_aside: list[int] = []

    def admit(self, messages: Sequence[InboundMessage], now: datetime) -> Admission:
        if messages[0].offset == self.fail_admit_of:
            self.fail_admit_of = None  # once: admitted again in its batch
            raise RuntimeError("admission failed")
        self.steps("admit", messages)
        time.sleep(self.admit_s)
        return Admission(IntakeResult(), [], None, now)  # type: ignore[arg-type]

    def record(self, admission: Admission) -> IntakeResult:
        raise AssertionError("replaced per batch below")

    def handle(self, messages: Sequence[InboundMessage], now: datetime) -> IntakeResult:
        self.steps("admit", messages)
        return self._recorded(messages)

    def _recorded(self, messages: Sequence[InboundMessage]) -> IntakeResult:
        if any(message.offset == self.poison for message in messages):
            raise ValueError("a message no retry will store")
        if messages[0].offset == self.outage_at:
            self.outage_at = None  # the database is back for the retry
            raise psycopg.OperationalError("connection refused")
        self.steps("record", messages)
        time.sleep(0.02)
        return IntakeResult(to_dispatch=[FakeOrder(messages[0].offset)])  # type: ignore[list-item]

    def unprocessable(self, message: InboundMessage, error: str, now: datetime) -> IntakeResult:
        self.set_aside.append(message.offset)
        return IntakeResult()

    def dispatched(self, orders: Sequence[FakeOrder], now: datetime) -> None:
        self.steps("mark start", [_At(orders[0].offset)])
        time.sleep(0.05)
        self.steps("mark end", [_At(orders[0].offset)])


@dataclass
class _At:
    offset: int


class FakeOutputs:
    def __init__(self, steps: Steps) -> None:
        self.steps = steps

    async def publish(self, orders: Sequence[FakeOrder], letters: Sequence[Any]) -> None:
        if not orders:  # a dead letter alone
            return
        self.steps("publish", [_At(orders[0].offset)])
        await asyncio.sleep(0.02)


def run_loop(batches: int, size: int, intake: FakeIntake) -> tuple[Steps, FakeConsumer]:
    settings = Settings(intake_batch_size=size, intake_batch_interval_ms=0, intake_batch_seconds=0.05)
    steps = intake.steps
    consumer = FakeConsumer(batches, size)

    async def main() -> None:
        loop = IntakeConsumer(settings, intake, FakeOutputs(steps), lambda: NOW)  # type: ignore[arg-type]
        admitted: dict[int, Sequence[InboundMessage]] = {}
        real_admit = intake.admit

        def admit(messages: Sequence[InboundMessage], now: datetime) -> Admission:
            admission = real_admit(messages, now)
            admitted[id(admission)] = messages
            return admission

        intake.admit = admit  # type: ignore[method-assign]
        intake.record = lambda admission: intake._recorded(admitted[id(admission)])  # type: ignore[method-assign]
        loop._consumer = consumer
        task = asyncio.create_task(loop._consume(loop))  # a mode task: the service is its argument
        while len(consumer.committed) < batches and not task.done():
            await asyncio.sleep(0.01)
        assert not task.done(), task.exception()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    return steps, consumer


def test_the_next_batch_is_admitted_while_the_batch_before_is_published_and_marked() -> None:
    steps, consumer = run_loop(batches=5, size=10, intake=FakeIntake(Steps()))

    for batch in (10, 20, 30, 40):
        before = batch - 10
        # Admitted ahead: before the batch before it was marked.
        assert steps.index("admit", batch) < steps.index("mark end", before)
        # Recorded only once the batch before is marked (its orders are then seen as sent).
        assert steps.index("record", batch) > steps.index("mark end", before)
    assert consumer.committed == [10, 20, 30, 40, 50]
    assert [step for step, _ in steps.log].count("record") == 5


def test_a_batch_whose_admission_ahead_failed_is_admitted_again_in_turn() -> None:
    steps, consumer = run_loop(batches=3, size=10, intake=FakeIntake(Steps(), fail_admit_of=10))

    assert consumer.committed == [10, 20, 30]
    assert steps.index("record", 10) > steps.index("mark end", 0)
    assert [first for step, first in steps.log if step == "record"] == [0, 10, 20]


def test_a_message_that_fails_alone_is_set_aside_and_the_batch_read_ahead_follows_in_turn() -> None:
    intake = FakeIntake(Steps(), poison=13)
    steps, consumer = run_loop(batches=3, size=10, intake=intake)

    assert intake.set_aside == [13]
    assert consumer.committed == [10, 20, 30]
    records = [first for step, first in steps.log if step == "record"]
    # The second batch split until offset 13 was alone; the third, read ahead meanwhile, was
    # recorded only after every part of the second was marked.
    assert records[0] == 0 and records[-1] == 20 and 20 not in records[:-1]
    second_marked = [
        n for n, (step, first) in enumerate(steps.log) if step == "mark end" and 10 <= first < 20
    ]
    assert second_marked and steps.index("record", 20) > max(second_marked)
    assert steps.log.count(("admit", 20)) == 1  # admitted ahead, and that admission used


def test_a_batch_read_ahead_whose_recording_meets_the_database_gone_is_admitted_again_and_recorded_once() -> (
    None
):
    steps, consumer = run_loop(batches=3, size=10, intake=FakeIntake(Steps(), outage_at=10))

    assert consumer.committed == [10, 20, 30]
    assert [first for step, first in steps.log if step == "record"] == [0, 10, 20]
    # Its admission made ahead went with the failed attempt: the retry admits it again, at its
    # own time (the receipt is the retry's), and the batch after is still read ahead.
    assert steps.log.count(("admit", 10)) == 2
    assert steps.index("admit", 20) < steps.index("mark end", 10)


def test_a_loop_suspended_while_the_next_batch_is_admitted_ahead_carries_on_and_records_nothing_more() -> (
    None
):
    """The topics went missing (the topic watch suspends intake) while the loop waited for the
    next batch's admission ahead: what was taken ahead goes with the consumer, and the loop
    lives on."""
    settings = Settings(intake_batch_size=10, intake_batch_interval_ms=0, intake_batch_seconds=0.05)
    intake = FakeIntake(Steps())
    intake.admit_s = 0.3  # longer than the batch before's mark: the loop waits for it
    consumer = FakeConsumer(3, 10)

    async def main() -> None:
        loop = IntakeConsumer(settings, intake, FakeOutputs(intake.steps), lambda: NOW)  # type: ignore[arg-type]
        intake.record = lambda admission: intake._recorded([_At(0)])  # type: ignore[method-assign,list-item]
        loop._consumer = consumer
        task = asyncio.create_task(loop._consume(loop))
        while consumer.committed != [10]:
            await asyncio.sleep(0.001)
        await loop.suspend()
        await asyncio.sleep(0.3)
        assert not task.done(), task  # the intake loop must not end: it waits to resume
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert consumer.committed == [10]
    assert [step for step, _ in intake.steps.log].count("record") == 1  # the first batch's only


def test_what_was_prepared_is_handed_over_once_and_only_for_its_own_batch() -> None:
    async def prepare(messages: list[InboundMessage]) -> object:
        return ("prepared", len(messages))

    async def main() -> None:
        ahead = ReadAhead(
            lambda fetched: [InboundMessage(TP.topic, 0, r.offset, None, b"{}") for r in fetched.get(TP, [])],
            prepare,
            10,
        )
        ahead.start(FakeConsumer(1, 10), assignments=3)
        taken = await ahead.taken()
        assert taken is not None and taken.assignments == 3 and len(taken.messages) == 10
        assert ahead.prepared(list(taken.messages)) is None  # another list: not its batch
        ahead.start(FakeConsumer(1, 10), assignments=3)
        again = await ahead.taken()
        assert again is not None
        assert ahead.prepared(again.messages) == ("prepared", 10)
        assert ahead.prepared(again.messages) is None  # once
        ahead.start(FakeConsumer(0, 10), assignments=3)
        assert await ahead.taken() is None  # nothing fetched: nothing taken

    asyncio.run(main())
