"""Exactly once for lifecycle commands on Apache Kafka, across SIGKILLs mid-stream.

A ``wo run`` worker in exactly-once mode takes a stream of signed commands (each order is
reassigned twice, then accepted and started) while it is SIGKILLed at random moments and
restarted. Before it first starts, the first commands are handled as a worker killed
between its database commit and its Kafka commit leaves them: stored, announced nowhere,
offsets not committed. At the end a ``read_committed`` consumer must see each order
version on the dispatched topic once and each command's lifecycle event once, and the
database every command applied once. SQLite and PostgreSQL; the session's broker.
"""

from __future__ import annotations

import importlib.util
import json
import random
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from kafka import KafkaProducer

from tests.integration.pipeline_support import REPO_ROOT, wait_for
from tests.integration.test_repository import T0, alarm_message, make_intake
from workorder_pipeline.config.settings import ProcessingGuarantee, Settings, Topics
from workorder_pipeline.schemas.workorder import COMMAND_CENTER, WorkOrder
from workorder_pipeline.services.commands import CommandHandler
from workorder_pipeline.services.intake import InboundMessage
from workorder_pipeline.services.policy_files import load_policy
from workorder_pipeline.services.sender_keys import SigningKey, load_senders, signed_headers
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.repository import WorkOrderRepository
from workorder_pipeline.storage.tables import processed_command, work_order, work_order_event
from workorder_pipeline.streams.kafka.admin import ensure_topics
from workorder_pipeline.wo.kafka_cluster import KafkaCluster

pytestmark = [pytest.mark.crash, pytest.mark.integration]

BENCH = REPO_ROOT / "bench" / "crash_test.py"
ORDERS = 40
#: Orders whose commands a killed worker already stored before the first start.
STORED_BEFORE = 5
KILLS = 4
OFFICERS = ["JS0682-0117", "JS0682-0342"]


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crash_test", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


crash = _load_bench()


def _command(order_id: str, action: str, unit: str, **extra: Any) -> dict[str, Any]:
    return {
        "schema": "workorder-command/1",
        "command_id": f"{order_id}-{action}-{uuid.uuid4().hex[:6]}",
        "work_order_id": order_id,
        "action": action,
        "actor": {"unit": unit, "officer_ids": OFFICERS},
        "at": datetime.now(UTC).isoformat(),
        **extra,
    }


def _commands_for(order: WorkOrder, rng: random.Random) -> list[dict[str, Any]]:
    """Reassigned twice (two new versions on the dispatched topic), accepted and started."""
    first, second = rng.sample([f"squad-{n}" for n in range(1, 6) if f"squad-{n}" != order.unit], 2)
    return [
        _command(order.id, "reassign", COMMAND_CENTER, to_unit=first),
        _command(order.id, "reassign", COMMAND_CENTER, to_unit=second),
        _command(order.id, "accept", second),
        _command(order.id, "start", second),
    ]


def _publish(
    producer: KafkaProducer, topic: str, key: SigningKey, commands: list[dict[str, Any]]
) -> list[Any]:
    """Publish in order and wait; returns each record's metadata (partition, offset)."""
    sent = []
    for command in commands:
        value = json.dumps(command).encode()
        headers = list(signed_headers(key, value))
        sent.append(producer.send(topic, key=command["work_order_id"].encode(), value=value, headers=headers))
    return [future.get(timeout=10) for future in sent]


def test_exactly_once_commands_publish_each_order_version_and_event_once_across_sigkills(
    kafka_broker: KafkaCluster, database_url: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    topics = Topics(**{name: f"eosc.{run}.{name}" for name in Topics.model_fields})
    ensure_topics(kafka_broker.bootstrap, topics.all(), crash.PARTITIONS, kafka_broker.replication_factor)
    migrate(database_url)
    engine = create_engine(database_url)
    repository = WorkOrderRepository(engine)
    orders = (
        make_intake(repository)
        .handle([alarm_message(f"EOSC-{run}-{n}", 9000 + n, offset=n) for n in range(ORDERS)], T0)
        .created
    )
    rng = random.Random(13)
    per_order = [_commands_for(order, rng) for order in orders]
    policy_dir, key = crash.signed_policy(tmp_path)
    group = f"wo-eosc-{run}"
    env = crash.worker_env(
        kafka_broker.bootstrap, database_url, group, ProcessingGuarantee.exactly_once, policy_dir
    )
    env |= {f"WO_TOPICS__{name.upper()}": value for name, value in topics.model_dump().items()}
    env["WO_INTAKE_BATCH_SIZE"] = "8"  # several transactions per chunk: more windows to die in
    worker = crash.WorkerSlot(0, env, tmp_path)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap, acks="all")
    try:
        # What a worker SIGKILLed between its database commit and its Kafka commit leaves.
        early = [c for commands in per_order[:STORED_BEFORE] for c in commands]
        placed = _publish(producer, topics.commands, key, early)
        units = frozenset(load_policy(policy_dir).units.ids())
        handler = CommandHandler(
            repository,
            units,
            load_policy(policy_dir).lifecycle,
            load_senders(policy_dir, units),
            ProcessingGuarantee.exactly_once,
        )
        for command, meta in zip(early, placed, strict=True):
            value = json.dumps(command).encode()
            inbound = InboundMessage(
                topics.commands,
                meta.partition,
                meta.offset,
                None,
                value,
                None,
                tuple(signed_headers(key, value)),
            )
            assert [o.outcome for o in handler.handle([inbound], datetime.now(UTC)).outcomes] == ["applied"]

        worker.start()
        rest = per_order[STORED_BEFORE:]
        chunks = [rest[n : n + 3] for n in range(0, len(rest), 3)]
        kills = 0
        for n, chunk in enumerate(chunks):
            _publish(producer, topics.commands, key, [c for commands in chunk for c in commands])
            if kills < KILLS and n % 2 == 1:
                wait_for(worker.assigned, 60, "the worker to be given partitions", describe=worker.log_text)
                time.sleep(rng.uniform(0.2, 2.5))
                worker.kill()
                kills += 1
                worker.start()
        assert kills == KILLS

        commands_group = Settings(consumer_group=group).commands_consumer_group

        def caught_up() -> bool:
            end = crash.end_offsets(kafka_broker.bootstrap, [topics.commands])
            committed = crash.committed_offsets(kafka_broker.bootstrap, commands_group, list(end))
            return all(committed[tp] >= offset for tp, offset in end.items())

        wait_for(caught_up, 180, "the commands to be committed", describe=worker.log_text)
        assert worker.stop() == 0, worker.log_text()[-4000:]
        dispatched = Counter(
            (json.loads(r.value)["work_order_id"], bytes(r.key).decode(), json.loads(r.value)["squad"])
            for r in crash.read_topic(kafka_broker.bootstrap, topics.dispatched)
        )
        lifecycle = Counter(
            json.loads(r.value)["command_id"]
            for r in crash.read_topic(kafka_broker.bootstrap, topics.lifecycle)
        )
        with engine.connect() as conn:
            outcomes = Counter(str(o) for o in conn.execute(sa.select(processed_command.c.outcome)).scalars())
            details = conn.execute(sa.select(work_order_event.c.detail)).scalars()
            audited = Counter(
                (d if isinstance(d, dict) else json.loads(d)).get("command_id") for d in details
            )
            statuses = Counter(str(s) for s in conn.execute(sa.select(work_order.c.status)).scalars())
    finally:
        worker.kill()
        producer.close(timeout=5)
        engine.dispose()

    every_command = [c for commands in per_order for c in commands]
    versions = {
        (c["work_order_id"], c["to_unit"], c["to_unit"]) for c in every_command if c["action"] == "reassign"
    }
    twice = {version: n for version, n in dispatched.items() if n > 1}
    assert twice == {}, f"order versions seen more than once by a read_committed consumer: {twice}"
    index = {order.id: n for n, order in enumerate(orders)}
    missing = sorted((index[order_id], unit) for order_id, unit, _ in versions - set(dispatched))
    assert missing == [], f"order versions never published (order number, unit): {missing}"
    assert set(dispatched) == versions
    events_twice = {command_id: n for command_id, n in lifecycle.items() if n > 1}
    assert events_twice == {}, f"lifecycle events seen more than once: {events_twice}"
    assert set(lifecycle) == {c["command_id"] for c in every_command}
    assert outcomes == {"applied": len(every_command)}
    assert all(audited[c["command_id"]] == 1 for c in every_command)
    assert statuses == {"in_progress": ORDERS}
