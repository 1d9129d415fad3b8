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
    HeldPort,
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
from workorder_pipeline.wo.broker_keeper import ATTEMPT_TIMEOUT_S, BROKER_SEEN_WITHIN_S, FIRST_RETRY_DELAY_S
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


def start_waiting_worker(tmp_path: Path, broker_port: int) -> PipelineProcess:
    """``wo run`` on an external broker at ``broker_port``, its metrics on a port it picks
    (a number picked for it now could be taken by another process while it waits)."""
    env = clean_env(
        WO_KAFKA_BOOTSTRAP=f"127.0.0.1:{broker_port}",
        WO_METRICS_PORT="0",
        WO_DATA_DIR=str(tmp_path / "data"),
        WO_DATABASE_URL=f"sqlite:///{tmp_path}/wo.db",
        WO_LOG_FORMAT="json",
    )
    return PipelineProcess.start([str(REPO_ROOT / ".venv" / "bin" / "wo"), "run"], env, tmp_path / "logs", 0)


def broker_seen(worker: PipelineProcess) -> dict[str, Any]:
    """``broker_available``, within the bound the worker's retry pauses give (its cap plus
    one attempt) of a broker that came up; the worker's own log, not its metrics port."""
    came_up = time.monotonic()
    (available,) = wait_for(
        lambda: log_events(worker, "broker_available") or None,
        BROKER_SEEN_WITHIN_S,
        f"broker_available within {BROKER_SEEN_WITHIN_S:g} s of the broker coming up",
        describe=worker.tail,
    )
    print(f"\nbroker_available {time.monotonic() - came_up:.1f} s after the broker came up: {available}")
    return available


def assert_consuming(worker: PipelineProcess, tmp_path: Path, bootstrap: str) -> None:
    """Its metrics answer, and an alarm published now becomes a work order."""
    worker.wait_metrics(TIMEOUT_S)
    wait_for(
        lambda: log_events(worker, "intake_partitions_assigned") or None,
        TIMEOUT_S,
        "the intake to be assigned its partitions",
        describe=worker.tail,
    )
    publish(bootstrap, [alarm(uuid.uuid4().hex[:6], 0)])
    engine = sa.create_engine(f"sqlite:///{tmp_path}/wo.db")

    def orders() -> int:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM work_order")).scalar_one())

    try:
        wait_for(lambda: orders() == 1 or None, TIMEOUT_S, "the alarm's work order", describe=worker.tail)
    finally:
        engine.dispose()


def test_wo_run_waits_for_an_external_broker_that_is_not_there_yet(tmp_path: Path) -> None:
    with HeldPort() as broker_port:
        worker = start_waiting_worker(tmp_path, broker_port.port)
        try:
            said = wait_for(
                lambda: log_events(worker, "broker_unavailable") or None,
                TIMEOUT_S,
                "the wait to be said",
                describe=worker.tail,
            )
            assert said[0]["bootstrap"] == f"127.0.0.1:{broker_port.port}"
            # Away for the first attempt and the next, a retry pause later (and some).
            time.sleep(FIRST_RETRY_DELAY_S + ATTEMPT_TIMEOUT_S + 2)
            assert worker.process.poll() is None, worker.tail()  # still waiting, not exited
            # kafka-python's own lines (~4 a second) stop once the wait is said.
            lines = worker.output().splitlines()
            waiting = next(n for n, line in enumerate(lines) if '"broker_unavailable"' in line)
            assert [line for line in lines[waiting:] if '"logger": "kafka.' in line] == []
            broker_port.release()
            with EmbeddedBroker(broker_port.port) as broker:
                available = broker_seen(worker)
                assert available["failed_attempts"] >= 2, available
                assert len(log_events(worker, "broker_unavailable")) == 1  # said once, not per retry
                assert_consuming(worker, tmp_path, broker.bootstrap)
                assert worker.stop(signal.SIGTERM) == 0, worker.tail()
        finally:
            if worker.process.poll() is None:
                worker.stop(signal.SIGKILL, timeout_s=10)


def test_wo_run_waits_past_a_broker_that_takes_connections_and_answers_nothing(tmp_path: Path) -> None:
    """The broker comes up frozen (connections queue, no answer), goes, and comes back: no
    attempt hangs on the frozen one, and the one that answers is seen."""
    frozen = EmbeddedBroker().start()
    try:
        frozen_pid = frozen.pid
        assert frozen_pid is not None
        os.kill(frozen_pid, signal.SIGSTOP)
        worker = start_waiting_worker(tmp_path, frozen.port)
        try:
            said = wait_for(
                lambda: log_events(worker, "broker_unavailable") or None,
                TIMEOUT_S,
                "the wait to be said",
                describe=worker.tail,
            )
            assert said[0]["error"] == "KafkaTimeoutError"
            time.sleep(FIRST_RETRY_DELAY_S + ATTEMPT_TIMEOUT_S + 2)
            assert worker.process.poll() is None, worker.tail()
            assert not log_events(worker, "broker_available")
            os.kill(frozen_pid, signal.SIGKILL)
            frozen.stop()  # reaps it: the port is free again
            with EmbeddedBroker(frozen.port) as broker:
                assert broker_seen(worker)["failed_attempts"] >= 2
                assert len(log_events(worker, "broker_unavailable")) == 1
                assert_consuming(worker, tmp_path, broker.bootstrap)
                assert worker.stop(signal.SIGTERM) == 0, worker.tail()
        finally:
            if worker.process.poll() is None:
                worker.stop(signal.SIGKILL, timeout_s=10)
    finally:
        frozen.stop()


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
