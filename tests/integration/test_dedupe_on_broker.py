"""Two ``wo run`` workers in one group on Apache Kafka (KRaft) and PostgreSQL, racing the
same dedupe keys: signals of one vehicle (and of one enterprise) keyed by their publisher
ids, so that they spread over partitions the two workers hold. Each key ends with exactly
one open order, and every signal is accounted for (orders + merges + suppressions).
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from kafka import KafkaProducer

from tests.integration.pipeline_support import (
    SAMPLES,
    PipelineProcess,
    file_lines,
    group_caught_up,
    metric_total,
    wait_for,
)
from tests.integration.test_intake_on_broker import TIMEOUT_S, WO, Worker
from workorder_pipeline.wo.embedded_broker import free_port
from workorder_pipeline.wo.kafka_cluster import KafkaCluster

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

PARTITIONS = 6
PLATES_PER_ROUND = 30
ALARMS_PER_PLATE = 4
ROUNDS = 3
CHECKINS = 12
ALARM = json.loads(file_lines(SAMPLES / "vehicle-alarms.jsonl")[0])
CHECKIN = json.loads(file_lines(SAMPLES / "checkin-failures.jsonl")[0])


@pytest.fixture
def worker(kafka_broker: KafkaCluster, postgres_url: str, tmp_path: Path) -> Iterator[Worker]:
    worker = Worker(kafka_broker.bootstrap, postgres_url, tmp_path)
    worker.env["WO_TOPIC_PARTITIONS"] = str(PARTITIONS)
    try:
        yield worker
    finally:
        worker.close()


def start_second(worker: Worker) -> PipelineProcess:
    """Another ``wo run`` of the same group (own metrics port), as a second host would run it."""
    port = free_port()
    env = {**worker.env, "WO_METRICS_PORT": str(port)}
    process = PipelineProcess.start([str(WO), "run"], env, worker.tmp / "run-second", port)
    worker.processes.append(process)
    process.wait_metrics(TIMEOUT_S)
    return process


def assigned(process: PipelineProcess, topic: str) -> set[str]:
    """The partitions of ``topic`` the process was last given (its JSON log)."""
    found: set[str] = set()
    for line in process.output().splitlines():
        if line.startswith("{") and '"intake_partitions_assigned"' in line:
            event = json.loads(line)
            found = {p for p in event.get("partitions", []) if p.startswith(f"{topic}/")}
    return found


def messages(worker: Worker, round_: int) -> list[tuple[str, bytes, bytes]]:
    """(topic, key, value): each plate's alarms and the enterprise's check-in failures, keyed
    by publisher id (the partitioner spreads them), interleaved."""
    out: list[tuple[str, bytes, bytes]] = []
    for n in range(ALARMS_PER_PLATE):
        for p in range(PLATES_PER_ROUND):
            alarm_id = f"DR-{round_}-{p:02d}-{n}"
            event = {**ALARM, "alarm_id": alarm_id, "plate": f"苏FK{round_}{p:03d}"}
            out.append(
                (worker.alarms_topic, alarm_id.encode(), json.dumps(event, ensure_ascii=False).encode())
            )
    for n in range(CHECKINS):
        check_id = f"CK-{round_}-{n:02d}"
        value = json.dumps({**CHECKIN, "check_id": check_id}, ensure_ascii=False).encode()
        out.append((worker.env["WO_TOPICS__CHECKIN_FAILURES"], check_id.encode(), value))
    return out


def produce(worker: Worker, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = KafkaProducer(bootstrap_servers=worker.bootstrap, acks="all", linger_ms=0)
    try:
        for future in [producer.send(topic, key=key, value=value) for topic, key, value in records]:
            future.get(timeout=10)
    finally:
        producer.close(timeout=5)


def stored_orders(worker: Worker) -> list[dict[str, Any]]:
    with worker.engine.connect() as conn:
        query = "SELECT id, dedupe_key, dedupe_slot, occurrences, status FROM work_order"
        return [dict(row) for row in conn.execute(sa.text(query)).mappings()]


def test_two_workers_racing_the_same_keys_open_one_order_per_key(worker: Worker) -> None:
    first = worker.start()
    second = start_second(worker)
    topics = [worker.alarms_topic, worker.env["WO_TOPICS__CHECKIN_FAILURES"]]

    def split_between_both() -> bool:
        for topic in topics:
            mine, theirs = assigned(first, topic), assigned(second, topic)
            if not mine or not theirs or mine & theirs or len(mine | theirs) != PARTITIONS:
                return False
        return True

    wait_for(split_between_both, TIMEOUT_S, "both workers to hold partitions", describe=second.tail)
    records: list[tuple[str, bytes, bytes]] = []
    for round_ in range(ROUNDS):
        batch = messages(worker, round_)
        produce(worker, batch)
        records += batch
        time.sleep(0.3)
    group = worker.env["WO_CONSUMER_GROUP"]
    wait_for(
        lambda: group_caught_up(worker.bootstrap, group, topics),
        TIMEOUT_S,
        "the group to commit everything produced",
        describe=first.tail,
    )

    texts = [first.metrics_text(), second.metrics_text()]
    received = [metric_total(text, "wo_signals_received_total") for text in texts]
    created = sum(metric_total(text, "wo_work_orders_created_total") for text in texts)
    merged = sum(metric_total(text, "wo_signals_deduplicated_total") for text in texts)
    suppressed = sum(metric_total(text, "wo_signals_suppressed_total") for text in texts)
    orders = stored_orders(worker)
    per_key = Counter(order["dedupe_key"] for order in orders)
    keys = ROUNDS * PLATES_PER_ROUND + 1  # the plates, and the enterprise of the check-ins

    assert all(count > 0 for count in received), f"each worker must have taken part: {received}"
    assert sum(received) == len(records)
    assert created + merged + suppressed == len(records)
    assert len(per_key) == keys and set(per_key.values()) == {1}, per_key.most_common(3)
    assert created == len(orders) == keys
    assert sum(order["occurrences"] for order in orders) == len(records) - suppressed
    assert all(order["dedupe_slot"] == order["dedupe_key"] for order in orders)
    for process in (first, second):
        assert process.stop(signal.SIGTERM) == 0, process.tail()
