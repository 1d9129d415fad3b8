"""PostgreSQL stops mid-stream: the worker retries, commits nothing it has not stored, loses nothing.

This test stops and restarts the machine's PostgreSQL server (and always leaves it running).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.pipeline_support import (
    SAMPLES,
    committed_offsets,
    end_offsets,
    file_lines,
    metric_total,
    wait_for,
)
from tests.integration.test_intake_on_broker import TIMEOUT_S, Worker
from wo.kafka_cluster import KafkaCluster

pytestmark = [pytest.mark.integration, pytest.mark.postgres, pytest.mark.outage]


def postgres(action: str) -> None:
    version = subprocess.run(
        ["ls", "/etc/postgresql"], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action], check=True, timeout=60
    )


def postgres_accepts_connections() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"], check=False).returncode == 0


@pytest.fixture
def postgres_restored() -> Iterator[None]:
    try:
        yield
    finally:
        if not postgres_accepts_connections():
            postgres("start")
        wait_for(postgres_accepts_connections, 60, "PostgreSQL to accept connections again")


def alarms(run: str, first: int, count: int) -> list[tuple[bytes, bytes]]:
    template = json.loads(file_lines(SAMPLES / "vehicle-alarms.jsonl")[0])
    messages = []
    for n in range(first, first + count):
        plate = f"苏FZ{n:04d}"
        event = {**template, "alarm_id": f"OUT-{run}-{n:05d}", "plate": plate}
        messages.append((plate.encode(), json.dumps(event, ensure_ascii=False).encode()))
    return messages


@pytest.fixture
def worker(kafka_broker: KafkaCluster, postgres_url: str, tmp_path: Path) -> Iterator[Worker]:
    worker = Worker(kafka_broker.bootstrap, postgres_url, tmp_path)
    try:
        yield worker
    finally:
        worker.close()


def test_a_database_outage_pauses_intake_and_loses_nothing(worker: Worker, postgres_restored: None) -> None:
    run = uuid.uuid4().hex[:6]
    process = worker.start()
    worker.produce(alarms(run, 0, 100))
    worker.wait_caught_up(process)
    assert worker.orders() == 100
    group = worker.env["WO_CONSUMER_GROUP"]

    topics = [worker.alarms_topic]
    before = committed_offsets(worker.bootstrap, group, list(end_offsets(worker.bootstrap, topics)))
    worker.engine.dispose()  # the test's own connections must not hold the server up
    postgres("stop")
    worker.produce(alarms(run, 100, 100))
    wait_for(lambda: "intake_batch_failed" in process.output(), TIMEOUT_S, "the worker to report the outage")
    # While the database is down, no offset moves past what was stored.
    assert committed_offsets(worker.bootstrap, group, list(before)) == before

    postgres("start")
    wait_for(postgres_accepts_connections, 60, "PostgreSQL to start")
    worker.wait_caught_up(process)
    assert worker.orders() == 200
    assert metric_total(process.metrics_text(), "wo_intake_batch_failures_total") >= 1
    dispatched = worker.dispatched()
    assert len(set(dispatched)) == 200
