"""The embedded broker dies under ``wo run``: the worker says what was lost, restarts it,
re-creates the topics with their partition counts, re-publishes what the database holds as
undispatched, and takes in new events again."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from kafka import KafkaAdminClient, KafkaProducer

from tests.integration.outage_support import alarm
from tests.integration.pipeline_support import (
    REPO_ROOT,
    PipelineProcess,
    children_of,
    clean_env,
    metric_samples,
    pids_with_cmdline,
    read_topic,
    wait_for,
)
from tests.integration.test_intake_on_broker import Worker
from workorder_pipeline.config.settings import Topics
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.services.intake import InboundMessage, Intake
from workorder_pipeline.services.policy_files import load_policy
from workorder_pipeline.storage.database import create_engine
from workorder_pipeline.storage.repository import WorkOrderRepository
from workorder_pipeline.streams.kafka.admin import ensure_topics
from workorder_pipeline.wo.embedded_broker import EmbeddedBroker, free_port

pytestmark = [pytest.mark.integration, pytest.mark.outage]

TIMEOUT_S = 60
TOPICS = Topics()


def publish(bootstrap: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", allow_auto_create_topics=False)
    try:
        for key, value in messages:
            producer.send(TOPICS.vehicle_alarms, key=key, value=value).get(timeout=10)
    finally:
        producer.close(timeout=5)


def log_events(process: PipelineProcess, name: str) -> list[dict[str, Any]]:
    found = []
    for line in process.output().splitlines():
        if line.startswith("{") and f'"{name}"' in line:
            event = json.loads(line)
            if event.get("event") == name:
                found.append(event)
    return found


def partition_counts(bootstrap: str, topics: list[str] = TOPICS.all()) -> dict[str, int]:  # noqa: B008
    """Partitions of each of ``topics`` that exists (kafka-python's describe creates nothing)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        described = admin.describe_topics(topics)
        return {str(t["name"]): len(t["partitions"]) for t in described if t.get("error_code", 0) == 0}
    finally:
        admin.close()


def test_a_killed_embedded_broker_is_restarted_and_nothing_the_database_holds_is_lost(
    tmp_path: Path,
) -> None:
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    database = f"sqlite:///{tmp_path}/wo.db"
    env = clean_env(
        WO_EMBEDDED_BROKER_PORT=str(port),
        WO_METRICS_PORT=str(free_port()),
        WO_DATA_DIR=str(tmp_path / "data"),
        WO_DATABASE_URL=database,
        WO_LOG_FORMAT="json",
    )
    worker = PipelineProcess.start(
        [str(REPO_ROOT / ".venv" / "bin" / "wo"), "run"], env, tmp_path / "logs", int(env["WO_METRICS_PORT"])
    )
    engine = sa.create_engine(database)

    def statuses() -> dict[str, int]:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT status, count(*) FROM work_order GROUP BY status")).all()
        return {str(status): int(count) for status, count in rows}

    def until_dispatched(count: int) -> None:
        expected = {"dispatched": count}
        wait_for(lambda: statuses() == expected or None, TIMEOUT_S, f"{count} orders", describe=worker.tail)

    run = uuid.uuid4().hex[:6]
    try:
        worker.wait_metrics(TIMEOUT_S)
        publish(bootstrap, [alarm(run, n) for n in range(10)])
        wait_for(
            lambda: statuses() == {"dispatched": 10} or None, TIMEOUT_S, "10 orders", describe=worker.tail
        )

        # Orders stored but not published (as by a worker that died before publishing them).
        repository = WorkOrderRepository(create_engine(database))
        intake = Intake(compile_policy(load_policy(REPO_ROOT / "policy")), repository, TOPICS.inbound())
        messages = [InboundMessage(TOPICS.vehicle_alarms, 0, n, *alarm(run, 100 + n)) for n in range(3)]
        undispatched = {order.id for order in intake.handle(messages, datetime.now(UTC)).created}
        assert len(undispatched) == 3

        (broker_pid,) = [p for p in children_of(worker.pid) if p in pids_with_cmdline(" broker ")]
        os.kill(broker_pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_for(
            lambda: log_events(worker, "kafka_topics_restored") or None,
            TIMEOUT_S,
            "topics back",
            describe=worker.tail,
        )
        print(f"\ntopics back {time.monotonic() - killed:.1f} s after the broker was killed")

        (lost,) = log_events(worker, "kafka_topics_not_as_expected")
        assert "the embedded broker" in lost["detail"] and "exited" in lost["detail"]
        assert "lost every topic" in lost["detail"]
        assert sorted(lost["missing"]) == sorted(TOPICS.all())
        assert log_events(worker, "embedded_broker_restarted")
        (new_pid,) = [p for p in children_of(worker.pid) if p in pids_with_cmdline(" broker ")]
        assert new_pid != broker_pid
        assert partition_counts(bootstrap) == dict.fromkeys(TOPICS.all(), 6)

        until_dispatched(13)  # the 3 stored but never published, published now
        published = {json.loads(r.value)["work_order_id"] for r in read_topic(bootstrap, TOPICS.dispatched)}
        assert undispatched <= published

        # New events after the restart become orders.
        publish(bootstrap, [alarm(run, 200 + n) for n in range(10)])
        wait_for(
            lambda: statuses() == {"dispatched": 23} or None, TIMEOUT_S, "new orders", describe=worker.tail
        )
        published = {json.loads(r.value)["work_order_id"] for r in read_topic(bootstrap, TOPICS.dispatched)}
        assert len(published) == 13
        assert partition_counts(bootstrap) == dict.fromkeys(TOPICS.all(), 6)  # nothing auto-created
        assert worker.stop(signal.SIGTERM) == 0, worker.tail()
    finally:
        engine.dispose()
        if worker.process.poll() is None:
            worker.stop(signal.SIGKILL, timeout_s=10)


def test_a_topic_lost_on_an_external_broker_is_said_and_waited_for(
    kafka_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    worker = Worker(kafka_broker.bootstrap, f"sqlite:///{tmp_path}/wo.db", tmp_path)
    try:
        process = worker.start()
        run = uuid.uuid4().hex[:6]
        worker.produce([alarm(run, n) for n in range(5)])
        worker.wait_caught_up(process)

        admin = KafkaAdminClient(bootstrap_servers=worker.bootstrap, request_timeout_ms=5000)
        try:
            admin.delete_topics([worker.alarms_topic])
        finally:
            admin.close()
        lost = wait_for(
            lambda: log_events(process, "kafka_topics_not_as_expected") or None,
            TIMEOUT_S,
            "the worker to say the topic is gone",
            describe=process.tail,
        )
        assert lost[0]["missing"] == [worker.alarms_topic]
        assert "waiting for them" in lost[0]["detail"]
        text = process.metrics_text()
        assert metric_samples(text, "wo_kafka_topics_not_as_expected") == {(): 1.0}
        time.sleep(6)  # more than a check period: nobody re-created it meanwhile
        assert worker.alarms_topic not in partition_counts(worker.bootstrap, [worker.alarms_topic])
        assert process.process.poll() is None, process.tail()

        ensure_topics(worker.bootstrap, [worker.alarms_topic], 3, 1)  # an operator's repair
        wait_for(
            lambda: log_events(process, "kafka_topics_restored") or None,
            TIMEOUT_S,
            "the worker to see the topic back",
            describe=process.tail,
        )
        worker.produce([alarm(run, n) for n in range(5, 10)])
        wait_for(lambda: worker.orders() == 10 or None, TIMEOUT_S, "new orders", describe=process.tail)
        assert process.stop(signal.SIGTERM) == 0, process.tail()
    finally:
        worker.close()


def test_wo_run_waits_for_an_external_broker_that_is_not_there_yet(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(
        WO_KAFKA_BOOTSTRAP=f"127.0.0.1:{port}",
        WO_METRICS_PORT=str(free_port()),
        WO_DATA_DIR=str(tmp_path / "data"),
        WO_DATABASE_URL=f"sqlite:///{tmp_path}/wo.db",
        WO_LOG_FORMAT="json",
    )
    worker = PipelineProcess.start(
        [str(REPO_ROOT / ".venv" / "bin" / "wo"), "run"], env, tmp_path / "logs", int(env["WO_METRICS_PORT"])
    )
    try:
        said = wait_for(
            lambda: log_events(worker, "broker_unavailable") or None, TIMEOUT_S, "the wait to be said"
        )
        assert said[0]["bootstrap"] == f"127.0.0.1:{port}"
        time.sleep(5)
        assert worker.process.poll() is None, worker.tail()  # still waiting, not exited
        assert len(log_events(worker, "broker_unavailable")) == 1  # said once, not per retry
        with EmbeddedBroker(port):
            worker.wait_metrics(TIMEOUT_S)  # it went on: topics, database, worker
            assert log_events(worker, "broker_available")
            assert worker.stop(signal.SIGTERM) == 0, worker.tail()
    finally:
        if worker.process.poll() is None:
            worker.stop(signal.SIGKILL, timeout_s=10)


def test_sigterm_with_a_frozen_embedded_broker_ends_wo_run_within_15_s(tmp_path: Path) -> None:
    env = clean_env(
        WO_EMBEDDED_BROKER_PORT=str(free_port()),
        WO_METRICS_PORT=str(free_port()),
        WO_DATA_DIR=str(tmp_path / "data"),
        WO_DATABASE_URL=f"sqlite:///{tmp_path}/wo.db",
        WO_LOG_FORMAT="json",
    )
    worker = PipelineProcess.start(
        [str(REPO_ROOT / ".venv" / "bin" / "wo"), "run"], env, tmp_path / "logs", int(env["WO_METRICS_PORT"])
    )
    try:
        worker.wait_metrics(TIMEOUT_S)
        up = lambda: log_events(worker, "intake_partitions_assigned") or None  # noqa: E731
        wait_for(up, TIMEOUT_S, "the worker to be up", describe=worker.tail)
        (broker_pid,) = [p for p in children_of(worker.pid) if p in pids_with_cmdline(" broker ")]
        os.kill(broker_pid, signal.SIGSTOP)  # it accepts connections and answers nothing
        wait_for(
            lambda: [e for e in log_events(worker, "worker_waiting") if e["on"] == "broker"] or None,
            TIMEOUT_S,
            "the worker to wait for the broker",
            describe=worker.tail,
        )
        started = time.monotonic()
        code = worker.stop(signal.SIGTERM, timeout_s=30)
        took = time.monotonic() - started
        print(f"\nSIGTERM with the broker frozen: exit {code} after {took:.1f} s")
        assert code == 0, worker.tail()
        assert took < 15, worker.tail()
        assert broker_pid not in pids_with_cmdline(" broker ")  # the frozen child went too
    finally:
        if worker.process.poll() is None:
            worker.stop(signal.SIGKILL, timeout_s=10)
