"""The broker becomes unreachable under a running worker: it stays up and carries on after."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from kafka import KafkaProducer

from tests.api.conftest import CuttableProxy, ProxiedBroker
from tests.integration.pipeline_support import (
    REPO_ROOT,
    SAMPLES,
    PipelineProcess,
    clean_env,
    file_lines,
    wait_for,
)
from workorder_pipeline.config.settings import Topics
from workorder_pipeline.streams.kafka.admin import ensure_topics
from workorder_pipeline.wo.embedded_broker import free_port

pytestmark = pytest.mark.integration
TIMEOUT_S = 60


@pytest.fixture
def network() -> Iterator[tuple[CuttableProxy, ProxiedBroker]]:
    broker_port = free_port()
    proxy = CuttableProxy(broker_port)
    broker = ProxiedBroker(proxy.port, port=broker_port)
    proxy.restore()  # the broker's readiness check already goes through the advertised proxy
    broker.start()
    try:
        yield proxy, broker
    finally:
        proxy.cut()
        broker.stop()


def publish(bootstrap: str, topic: str, first: int, count: int) -> None:
    template = json.loads(file_lines(SAMPLES / "vehicle-alarms.jsonl")[0])
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=10_000)
    try:
        for n in range(first, first + count):
            event = {**template, "alarm_id": f"NET-{n:04d}", "plate": f"苏FN{n:04d}"}
            producer.send(topic, key=event["plate"].encode(), value=json.dumps(event).encode()).get(
                timeout=10
            )
    finally:
        producer.close(timeout=5)


def start_worker(bootstrap: str, topics: Topics, tmp_path: Path) -> PipelineProcess:
    """``wo run`` on ``bootstrap`` (the proxy) and a SQLite database in ``tmp_path``/wo.db."""
    ensure_topics(bootstrap, topics.all(), 3, 1)
    env = clean_env(
        WO_KAFKA_BOOTSTRAP=bootstrap,
        WO_DATABASE_URL=f"sqlite:///{tmp_path / 'wo.db'}",
        WO_DATA_DIR=str(tmp_path / "data"),
        WO_METRICS_PORT=str(free_port()),
        WO_TOPIC_PARTITIONS="3",
        WO_KAFKA_SESSION_TIMEOUT_S="4",
        WO_LOG_FORMAT="json",
    )
    return PipelineProcess.start(
        [str(REPO_ROOT / ".venv" / "bin" / "wo"), "run"], env, tmp_path / "logs", int(env["WO_METRICS_PORT"])
    )


def test_the_worker_survives_a_broker_outage_and_catches_up(
    network: tuple[CuttableProxy, ProxiedBroker], tmp_path: Path
) -> None:
    proxy, _broker = network
    bootstrap = f"127.0.0.1:{proxy.port}"
    topics = Topics()
    worker = start_worker(bootstrap, topics, tmp_path)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'wo.db'}")

    def orders() -> int:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM work_order")).scalar_one())

    try:
        worker.wait_metrics(TIMEOUT_S)
        publish(bootstrap, topics.vehicle_alarms, 0, 10)
        wait_for(lambda: orders() == 10 or None, TIMEOUT_S, "the first 10 orders", describe=worker.tail)

        proxy.cut()
        time.sleep(8)  # the outage: every connection to the broker is dropped and refused
        assert worker.process.poll() is None, "the worker exited during the outage: " + worker.tail()
        proxy.restore()

        publish(bootstrap, topics.vehicle_alarms, 10, 10)
        wait_for(
            lambda: orders() == 20 or None,
            TIMEOUT_S,
            "the worker to reconnect and catch up",
            describe=worker.tail,
        )
        assert worker.stop(signal.SIGTERM) == 0, worker.tail()
    finally:
        engine.dispose()
        if worker.process.poll() is None:
            worker.stop(signal.SIGKILL, timeout_s=10)


def test_sigterm_while_the_broker_is_gone_ends_the_worker_within_15_s(
    network: tuple[CuttableProxy, ProxiedBroker], tmp_path: Path
) -> None:
    """A Kafka node that died (connections refused) and then SIGTERM, as an operator stops a
    worker whose broker is down: faust's consumer thread, closing its consumer, met aiokafka's
    cancelled fetch and never said it had stopped (the worker hung, spinning on metadata)."""
    proxy, _broker = network
    bootstrap = f"127.0.0.1:{proxy.port}"
    topics = Topics()
    worker = start_worker(bootstrap, topics, tmp_path)
    try:
        worker.wait_metrics(TIMEOUT_S)
        publish(bootstrap, topics.vehicle_alarms, 0, 10)
        wait_for(
            lambda: '"intake_batch"' in worker.output() or None, TIMEOUT_S, "a batch", describe=worker.tail
        )
        proxy.cut()
        time.sleep(3)  # every client of the worker is retrying by now
        started = time.monotonic()
        code = worker.stop(signal.SIGTERM, timeout_s=30)
        assert time.monotonic() - started < 15, worker.tail()
        assert code == 0, worker.tail()
    finally:
        if worker.process.poll() is None:
            worker.stop(signal.SIGKILL, timeout_s=10)
