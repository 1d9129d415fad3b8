"""``wo run`` against an external broker (the session's Tansu) and PostgreSQL.

With WO_KAFKA_BOOTSTRAP set no embedded broker is started. Its own consumer group and
topic names isolate each test from others on the shared broker.
"""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from kafka import KafkaProducer
from sqlalchemy.engine import Engine

from tests.integration.pipeline_support import (
    REPO_ROOT,
    SAMPLES,
    PipelineProcess,
    children_of,
    clean_env,
    file_lines,
    group_caught_up,
    metric_total,
    pids_with_cmdline,
    read_topic,
    wait_for,
)
from workorder_pipeline.config.settings import Topics
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.services.intake import InboundMessage, Intake
from workorder_pipeline.services.policy_files import load_policy
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.repository import WorkOrderRepository
from workorder_pipeline.streams.kafka.admin import ensure_topics
from workorder_pipeline.wo.embedded_broker import free_port
from workorder_pipeline.wo.kafka_cluster import KafkaCluster

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

WO = REPO_ROOT / ".venv" / "bin" / "wo"
DISTINCT = 20
RESENT = 10
TIMEOUT_S = 40
TOPIC_SETTINGS = (
    "VEHICLE_ALARMS",
    "SUSPECTS",
    "CHECKIN_FAILURES",
    "COMPLAINTS",
    "DISPATCHED",
    "DEAD_LETTERS",
)


def alarms(run: str) -> list[tuple[bytes, bytes]]:
    """30 (key, value) messages: 20 distinct alarms and exact re-sends of 10 of them, interleaved."""
    template = json.loads(file_lines(SAMPLES / "vehicle-alarms.jsonl")[0])
    distinct = []
    for n in range(DISTINCT):
        plate = f"苏FQ{n:04d}"  # distinct vehicles: triage neither merges nor suppresses them
        event = {**template, "alarm_id": f"IT-{run}-{n:03d}", "plate": plate}
        distinct.append((plate.encode(), json.dumps(event, ensure_ascii=False).encode()))
    messages = []
    for n, message in enumerate(distinct):
        messages.append(message)
        if n % 2 == 1:
            messages.append(distinct[n - 1])  # byte for byte the same message again
    assert len(messages) == DISTINCT + RESENT
    return messages


@dataclass
class Worker:
    """One isolated ``wo run`` set-up: topics, consumer group, database, ports."""

    bootstrap: str
    database_url: str
    tmp: Path
    env: dict[str, str] = field(default_factory=dict)
    processes: list[PipelineProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        run = uuid.uuid4().hex[:10]
        self.env = clean_env(
            WO_KAFKA_BOOTSTRAP=self.bootstrap,
            WO_DATABASE_URL=self.database_url,
            WO_CONSUMER_GROUP=f"it-wo-{run}",
            WO_METRICS_PORT=str(free_port()),
            WO_DATA_DIR=str(self.tmp / "data"),
            WO_LOG_FORMAT="json",
            WO_TOPIC_PARTITIONS="3",
            # A SIGKILLed member holds its partitions until its session expires: keep that short.
            WO_KAFKA_SESSION_TIMEOUT_S="4",
            **{f"WO_TOPICS__{name}": f"it.{run}.{name.lower().replace('_', '-')}" for name in TOPIC_SETTINGS},
        )
        self.engine: Engine = sa.create_engine(self.database_url)

    @property
    def alarms_topic(self) -> str:
        return self.env["WO_TOPICS__VEHICLE_ALARMS"]

    @property
    def dispatched_topic(self) -> str:
        return self.env["WO_TOPICS__DISPATCHED"]

    def start(self) -> PipelineProcess:
        logs = self.tmp / f"run-{len(self.processes) + 1}"
        process = PipelineProcess.start([str(WO), "run"], self.env, logs, int(self.env["WO_METRICS_PORT"]))
        self.processes.append(process)
        process.wait_metrics(TIMEOUT_S)
        return process

    def produce(self, messages: Sequence[tuple[bytes, bytes | None]]) -> None:
        """Publish (key, value) messages in order; a None value is a tombstone."""
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", request_timeout_ms=10_000)
        try:
            futures = [producer.send(self.alarms_topic, key=key, value=value) for key, value in messages]
            for future in futures:
                future.get(timeout=10)
        finally:
            producer.close(timeout=5)

    def wait_caught_up(self, process: PipelineProcess) -> None:
        """Until the group has committed every alarm now in the topic: all of them are handled."""
        group = self.env["WO_CONSUMER_GROUP"]
        wait_for(
            lambda: group_caught_up(self.bootstrap, group, [self.alarms_topic]),
            TIMEOUT_S,
            f"group {group} to commit everything in {self.alarms_topic}",
            describe=process.tail,
        )

    def orders(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM work_order")).scalar_one())

    def statuses(self) -> list[tuple[str, int]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT status, count(*) FROM work_order GROUP BY status")).all()
        return [(str(status), int(count)) for status, count in rows]

    def dispatched(self) -> list[str]:
        return [
            json.loads(r.value)["work_order_id"] for r in read_topic(self.bootstrap, self.dispatched_topic)
        ]

    def close(self) -> None:
        for process in self.processes:
            process.stop(signal.SIGKILL, timeout_s=10)
        self.engine.dispose()


@pytest.fixture
def worker(kafka_broker: KafkaCluster, postgres_url: str, tmp_path: Path) -> Iterator[Worker]:
    worker = Worker(kafka_broker.bootstrap, postgres_url, tmp_path)
    try:
        yield worker
    finally:
        worker.close()


def test_resends_and_a_sigkilled_restart_make_no_second_order(worker: Worker) -> None:
    messages = alarms(uuid.uuid4().hex[:6])
    first = worker.start()
    # With a bootstrap address, no embedded broker is started.
    assert [pid for pid in children_of(first.pid) if pid in pids_with_cmdline(" broker ")] == []

    worker.produce(messages)
    worker.wait_caught_up(first)
    text = first.metrics_text()
    assert metric_total(text, "wo_signals_received_total") == DISTINCT + RESENT
    assert metric_total(text, "wo_signals_redelivered_total") == RESENT
    assert metric_total(text, "wo_work_orders_created_total") == DISTINCT
    assert worker.orders() == DISTINCT
    dispatched = worker.dispatched()
    assert len(dispatched) == len(set(dispatched)) == DISTINCT

    # A hard crash, then a restart: the same 30 again change nothing.
    assert first.stop(signal.SIGKILL, timeout_s=10) == -signal.SIGKILL
    second = worker.start()
    worker.produce(messages)
    worker.wait_caught_up(second)

    text = second.metrics_text()
    assert metric_total(text, "wo_signals_received_total") >= DISTINCT + RESENT
    assert metric_total(text, "wo_work_orders_created_total") == 0
    assert worker.orders() == DISTINCT
    assert sorted(worker.dispatched()) == sorted(dispatched)
    assert worker.statuses() == [("dispatched", DISTINCT)]
    with worker.engine.connect() as conn:
        events = conn.execute(sa.text("SELECT type, count(*) FROM work_order_event GROUP BY type")).all()
    assert sorted((str(t), int(c)) for t, c in events) == [("dispatched", DISTINCT), ("registered", DISTINCT)]
    assert second.stop(signal.SIGTERM) == 0, second.tail()


def test_orders_stored_but_never_published_are_published_on_start(worker: Worker) -> None:
    """A worker that died between storing a batch and publishing it: the next one publishes it."""
    messages = alarms(uuid.uuid4().hex[:6])
    migrate(worker.database_url)
    engine = create_engine(worker.database_url)
    try:
        topics = Topics(vehicle_alarms=worker.alarms_topic)
        intake = Intake(
            compile_policy(load_policy(REPO_ROOT / "policy")), WorkOrderRepository(engine), topics.inbound()
        )
        stored = intake.handle(
            [
                InboundMessage(worker.alarms_topic, 0, n, key, value)
                for n, (key, value) in enumerate(messages)
            ],
            datetime.now(UTC),
        )
    finally:
        engine.dispose()
    assert len(stored.created) == DISTINCT and worker.statuses() == [("registered", DISTINCT)]

    process = worker.start()
    wait_for(
        lambda: worker.statuses() == [("dispatched", DISTINCT)] or None,
        TIMEOUT_S,
        "the stored orders to be published",
        describe=process.tail,
    )
    assert sorted(worker.dispatched()) == sorted(o.id for o in stored.created)

    # The same messages delivered now (as after the crash) publish nothing a second time.
    worker.produce(messages)
    worker.wait_caught_up(process)
    assert worker.orders() == DISTINCT
    assert sorted(worker.dispatched()) == sorted(o.id for o in stored.created)
    assert process.stop(signal.SIGTERM) == 0, process.tail()


def repeats(run: str, count: int) -> list[tuple[bytes, bytes]]:
    """``count`` distinct alarms of one vehicle and type, minutes apart: one dedupe key."""
    template = json.loads(file_lines(SAMPLES / "vehicle-alarms.jsonl")[0])
    plate = f"苏FR{run[:4].upper().replace('I', '1').replace('O', '0')}"
    messages = []
    for n in range(count):
        event = {
            **template,
            "alarm_id": f"REP-{run}-{n:03d}",
            "plate": plate,
            "occurred_at": f"2026-11-22T08:{n:02d}:00+08:00",
        }
        messages.append((plate.encode(), json.dumps(event, ensure_ascii=False).encode()))
    return messages


def test_repeated_alarms_merge_into_one_order_across_a_restart(worker: Worker) -> None:
    run = uuid.uuid4().hex[:6]
    messages = repeats(run, 12)
    first = worker.start()
    # The first half, each sent twice (a platform's re-send), then a crash.
    worker.produce([m for m in messages[:6] for _ in range(2)])
    worker.wait_caught_up(first)
    assert first.stop(signal.SIGKILL, timeout_s=10) == -signal.SIGKILL

    # The second half after the restart, and the first half re-delivered once more.
    second = worker.start()
    worker.produce(messages[6:] + messages[:6])
    worker.wait_caught_up(second)

    with worker.engine.connect() as conn:
        orders = conn.execute(
            sa.text("SELECT id, occurrences, first_seen_at, last_seen_at FROM work_order")
        ).all()
        sources = conn.execute(sa.text("SELECT count(*) FROM work_order_source")).scalar_one()
        merged = conn.execute(
            sa.text("SELECT count(*) FROM work_order_event WHERE type = 'merged'")
        ).scalar_one()
    assert len(orders) == 1
    (order_id, occurrences, first_seen, last_seen) = orders[0]
    assert occurrences == 12
    assert sources == 12
    assert merged == 11
    assert (last_seen - first_seen).total_seconds() == 11 * 60
    assert worker.dispatched() == [order_id]
    text = second.metrics_text()
    assert metric_total(text, "wo_signals_deduplicated_total") == 6
    assert second.stop(signal.SIGTERM) == 0, second.tail()


def test_a_backlog_read_ahead_merges_and_recognizes_resends_across_batches(worker: Worker) -> None:
    """Batches of 10 with no interval: each next batch is read and admitted while the one
    before is published. Its repeats and re-sends of the batch before must still see that
    batch's orders stored and marked: one order per vehicle, each published once."""
    run = uuid.uuid4().hex[:6]
    template = json.loads(file_lines(SAMPLES / "vehicle-alarms.jsonl")[0])
    vehicles = 40

    def alarm(n: int, repeat: int) -> tuple[bytes, bytes]:
        plate = f"苏FA{n:04d}"
        event = {
            **template,
            "alarm_id": f"RA-{run}-{n:03d}-{repeat}",
            "plate": plate,
            "occurred_at": f"2026-11-22T08:{repeat:02d}:00+08:00",
        }
        return plate.encode(), json.dumps(event, ensure_ascii=False).encode()

    # Each vehicle's first alarm, then (a few messages on) its re-send and a repeat: they
    # fall into the batch after the first alarm's, or the one after that.
    messages = []
    for n in range(vehicles):
        messages.append(alarm(n, 0))
        if n >= 3:
            messages += [alarm(n - 3, 0), alarm(n - 3, 1)]
    messages += [m for n in range(vehicles - 3, vehicles) for m in (alarm(n, 0), alarm(n, 1))]
    ensure_topics(worker.bootstrap, [worker.alarms_topic], 3, 1)
    worker.produce(messages)  # a backlog before the worker starts: full batches
    worker.env.update(WO_INTAKE_BATCH_SIZE="10", WO_INTAKE_BATCH_INTERVAL_MS="0")
    process = worker.start()
    worker.wait_caught_up(process)

    batches = [json.loads(line) for line in process.output().splitlines() if '"intake_batch"' in line]
    assert sum(batch["messages"] for batch in batches) == len(messages)
    assert sum(batch.get("admitted_ahead", 0) for batch in batches) >= 5, process.tail()
    with worker.engine.connect() as conn:
        occurrences = conn.execute(sa.text("SELECT occurrences FROM work_order")).scalars().all()
    assert sorted(occurrences) == [2] * vehicles
    dispatched = worker.dispatched()
    assert len(dispatched) == len(set(dispatched)) == vehicles
    assert worker.statuses() == [("dispatched", vehicles)]
    assert process.stop(signal.SIGTERM) == 0, process.tail()
