"""Exactly once when a worker stalls mid-batch past its session timeout (a zombie).

Two ``wo run`` workers in exactly-once mode on Apache Kafka and PostgreSQL share a backlog
of vehicle alarms, each of another vehicle (each makes its own order). While the first
worker is busy with its batches it is frozen (SIGSTOP) for longer than the session
timeout: the group gives its partitions to the second worker, which reads them again
from the last committed offsets and publishes their orders. Then the first worker is
thawed (SIGCONT) and carries on with the batch it held: its Kafka transaction must not
commit (the partition's next owner fenced it). At the end a ``read_committed`` consumer
must see each order on the dispatched topic once, for every alarm sent.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from kafka import KafkaProducer

from tests.integration.pipeline_support import REPO_ROOT, wait_for
from workorder_pipeline.config.settings import ProcessingGuarantee, Topics
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.tables import work_order, work_order_source
from workorder_pipeline.streams.kafka.admin import ensure_topics
from workorder_pipeline.wo.kafka_cluster import KafkaCluster

pytestmark = [pytest.mark.crash, pytest.mark.integration, pytest.mark.postgres]

BENCH = REPO_ROOT / "bench" / "crash_test.py"
#: Freezes, each while the first worker works through a fresh chunk of alarms.
FREEZES = 3
CHUNK = 1_200
#: Small batches: the first worker is inside one (stored, not yet committed to Kafka)
#: nearly all the time it works, so a freeze almost always lands in one.
BATCH = 40
SESSION_TIMEOUT_S = 4.0


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crash_test", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


crash = _load_bench()


def _alarm(run: str, n: int) -> tuple[bytes, bytes]:
    plate = f"苏A{n:05d}"
    alarm = {
        "schema": "vehicle-alarm/1",
        "alarm_id": f"ZOMBIE-{run}-{n}",
        "platform_id": "js-key-vehicles",
        "plate": plate,
        "plate_color": "yellow",
        "vehicle_class": "coach",
        "alarm_type": "fatigue_driving",
        "level": 2,
        "occurred_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "location": {"lat": 32.44, "lon": 120.63, "region_code": "320682", "road": "G15"},
        "duration_s": 95,
    }
    return plate.encode(), json.dumps(alarm).encode()


def _batches_logged(worker: Any) -> int:
    text: str = worker.log_text()
    return text.count('"event": "intake_batch"')


def test_a_worker_frozen_mid_batch_past_its_session_timeout_publishes_no_order_twice(
    kafka_broker: KafkaCluster, postgres_url: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    topics = Topics(**{name: f"eosz.{run}.{name}" for name in Topics.model_fields})
    ensure_topics(kafka_broker.bootstrap, topics.all(), crash.PARTITIONS, kafka_broker.replication_factor)
    migrate(postgres_url)
    group = f"wo-eosz-{run}"
    env = crash.worker_env(kafka_broker.bootstrap, postgres_url, group, ProcessingGuarantee.exactly_once)
    env |= {f"WO_TOPICS__{name.upper()}": value for name, value in topics.model_dump().items()}
    env |= {"WO_INTAKE_BATCH_SIZE": str(BATCH), "WO_INTAKE_BATCH_INTERVAL_MS": "0"}
    env["WO_KAFKA_SESSION_TIMEOUT_S"] = str(SESSION_TIMEOUT_S)
    frozen, other = crash.WorkerSlot(0, env, tmp_path), crash.WorkerSlot(1, env, tmp_path)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all", linger_ms=5)
    engine = create_engine(postgres_url)
    sent = 0
    try:
        frozen.start()
        wait_for(frozen.assigned, 90, "the first worker's partitions", describe=frozen.log_text)
        other.start()
        wait_for(other.assigned, 90, "the second worker's partitions", describe=other.log_text)
        for _ in range(FREEZES):
            # Both workers hold partitions (the thawed one rejoined): wait for the rebalance to settle.
            time.sleep(SESSION_TIMEOUT_S)
            before = _batches_logged(frozen)
            alarms = [_alarm(run, sent + n) for n in range(CHUNK)]
            futures = [producer.send(topics.vehicle_alarms, key=key, value=value) for key, value in alarms]
            for future in futures:
                future.get(timeout=30)
            sent += CHUNK

            def working(n: int = before) -> bool:
                return _batches_logged(frozen) > n

            wait_for(working, 60, "a batch", 0.01, frozen.log_text)
            assert frozen.process is not None
            os.killpg(frozen.process.pid, signal.SIGSTOP)
            try:
                # The group's session ends; the other worker takes the partitions and their batches.
                time.sleep(SESSION_TIMEOUT_S * 2.5)
            finally:
                os.killpg(frozen.process.pid, signal.SIGCONT)

        def caught_up() -> bool:
            inbound = list(topics.inbound())
            end = crash.end_offsets(kafka_broker.bootstrap, inbound)
            committed = crash.committed_offsets(kafka_broker.bootstrap, group, list(end))
            return all(committed[tp] >= offset for tp, offset in end.items())

        wait_for(caught_up, 180, "the alarms to be committed", 0.5, lambda: frozen.log_text()[-4000:])
        assert frozen.stop() == 0, frozen.log_text()[-4000:]
        assert other.stop() == 0, other.log_text()[-4000:]
        records = crash.read_topic(kafka_broker.bootstrap, topics.dispatched)
        with engine.connect() as conn:
            orders = {str(i) for i in conn.execute(sa.select(work_order.c.id)).scalars()}
            sources = sa.select(work_order_source.c.work_order_id, work_order_source.c.position)
            positions = {str(row.work_order_id): str(row.position) for row in conn.execute(sources)}
    finally:
        frozen.kill()
        other.kill()
        producer.close(timeout=5)
        engine.dispose()

    dispatched = Counter((json.loads(r.value)["work_order_id"], bytes(r.key).decode()) for r in records)
    twice = {version: n for version, n in dispatched.items() if n > 1}
    where = sorted(positions[order_id] for order_id, _ in twice)
    assert twice == {}, f"{len(twice)} orders seen more than once by a read_committed consumer: {where}"
    assert len(orders) == sent, "every alarm (each of another vehicle) makes an order"
    assert {order_id for order_id, _ in dispatched} == orders
