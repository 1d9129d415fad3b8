"""The crash test at CI size (bench/crash_test.py is the full-size script that prints figures).

``wo run`` workers on their own Apache Kafka broker and a PostgreSQL database take a mix of
signals and lifecycle commands while one of them is SIGKILLed at random moments and
restarted; at the end nothing may be duplicated, lost or applied twice.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from kafka import KafkaProducer

from tests.integration.pipeline_support import REPO_ROOT, wait_for
from workorder_pipeline.config.settings import ProcessingGuarantee, Settings, Topics
from workorder_pipeline.schemas.workorder import COMMAND_CENTER
from workorder_pipeline.services.commands import CommandHandler
from workorder_pipeline.services.intake import InboundMessage
from workorder_pipeline.services.policy_files import load_policy
from workorder_pipeline.services.sender_keys import load_senders, signed_headers
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.repository import WorkOrderRepository
from workorder_pipeline.streams.kafka.admin import ensure_topics
from workorder_pipeline.wo.kafka_cluster import BrokerKind, running_broker

pytestmark = [pytest.mark.crash, pytest.mark.integration, pytest.mark.postgres]

BENCH = REPO_ROOT / "bench" / "crash_test.py"
TIMEOUT_S = 60


def _load_bench() -> ModuleType:
    """bench/ is not a package: load the script as the module ``crash_test``."""
    spec = importlib.util.spec_from_file_location("crash_test", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


crash = _load_bench()


@pytest.mark.parametrize(
    ("workers", "seed", "guarantee"),
    [
        (1, 11, ProcessingGuarantee.at_least_once),
        (2, 12, ProcessingGuarantee.at_least_once),
        (2, 13, ProcessingGuarantee.exactly_once),
    ],
    ids=["one-worker", "two-workers-one-killed-rebalance", "exactly-once-two-workers"],
)
def test_sigkilled_workers_duplicate_lose_and_apply_twice_nothing(
    workers: int, seed: int, guarantee: ProcessingGuarantee, postgres_url: str, tmp_path: Path
) -> None:
    """Exactly once adds: a read_committed consumer of workorders.dispatched sees each order once."""
    config = crash.CrashConfig(
        signals=3_000,
        kills=6,
        workers=workers,
        guarantee=guarantee,
        seed=seed,
        database_url=postgres_url,
        chunk=200,
        catch_up_timeout_s=120.0,
        workdir=tmp_path,
    )
    report = crash.run_crash_test(config, print)
    table = f"{report.table()}\nworker and broker logs: {tmp_path}"
    print(table)
    assert report.kills >= 6, table
    assert report.caught_up, table
    assert (report.duplicates, report.lost, report.applied_twice) == (0, 0, 0), table
    assert report.failures() == [], table
    if guarantee is ProcessingGuarantee.exactly_once:
        assert report.republished == 0, table


# --- what the crash test can only hit by chance, made certain ---------------------------


def _produce(
    bootstrap: str, messages: list[tuple[str, bytes, bytes]], headers: Callable[[bytes], Any] | None = None
) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=10_000)
    try:
        sent = [
            producer.send(topic, key=key, value=value, headers=headers(value) if headers else None)
            for topic, key, value in messages
        ]
        for future in sent:
            future.get(timeout=10)
    finally:
        producer.close(timeout=5)


def _command(order_id: str, action: str, unit: str, **extra: Any) -> bytes:
    command = {
        "schema": "workorder-command/1",
        "command_id": f"{order_id}-{action}-{uuid.uuid4().hex[:6]}",
        "work_order_id": order_id,
        "action": action,
        "actor": {"unit": unit, "officer_ids": ["JS0682-0117", "JS0682-0342"]},
        "at": datetime.now(UTC).isoformat(),
        **extra,
    }
    return json.dumps(command).encode()


def test_a_command_committed_by_a_worker_killed_before_publishing_still_gets_published(
    postgres_url: str, tmp_path: Path
) -> None:
    """The window the crash test hits only by chance, made certain.

    A worker SIGKILLed after its command batch's transaction committed and before the
    broker acknowledged the lifecycle events leaves the effects recorded, nothing
    published and the offsets uncommitted. The next worker gets the commands again and
    finds them in processed_command: they must still be announced. (Up to fcfb317 they
    were dropped as duplicates: no lifecycle event, and a reassigned order never reached
    its new unit. The outbox, written in the command's transaction, closes the window.)
    """
    topics = Topics()
    policy = load_policy(REPO_ROOT / "policy")
    with running_broker(BrokerKind.KAFKA, tmp_path) as broker:
        ensure_topics(broker.bootstrap, topics.all(), crash.PARTITIONS, broker.replication_factor)
        migrate(postgres_url)
        group = f"wo-crash-repro-{uuid.uuid4().hex[:8]}"
        policy_dir, key = crash.signed_policy(tmp_path)
        env = crash.worker_env(broker.bootstrap, postgres_url, group, policy_dir=policy_dir)
        worker = crash.WorkerSlot(0, env, tmp_path)
        engine = create_engine(postgres_url)
        try:
            worker.start()
            # An order made the real way: an alarm in, dispatched by the worker.
            alarm = {
                "schema": "vehicle-alarm/1",
                "alarm_id": f"REPRO-{uuid.uuid4().hex[:8]}",
                "platform_id": "js-key-vehicles",
                "plate": "苏A00001",
                "plate_color": "yellow",
                "vehicle_class": "coach",
                "alarm_type": "fatigue_driving",
                "level": 2,
                "occurred_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
                "location": {"lat": 32.44, "lon": 120.63, "region_code": "320682", "road": "G15"},
                "duration_s": 95,
            }
            _produce(broker.bootstrap, [(topics.vehicle_alarms, b"A00001", json.dumps(alarm).encode())])

            def dispatched_order() -> tuple[str, str] | None:
                with engine.connect() as conn:
                    row = conn.execute(
                        sa.text("SELECT id, unit FROM work_order WHERE status = 'dispatched'")
                    ).first()
                return (str(row.id), str(row.unit)) if row else None

            order_id, unit = wait_for(dispatched_order, TIMEOUT_S, "the order", describe=worker.log_text)
            commands = [
                _command(order_id, "accept", unit),
                _command(order_id, "reassign", COMMAND_CENTER, to_unit="squad-2"),
            ]
            # What a worker leaves behind when SIGKILLed after its command batch's transaction
            # committed and before the lifecycle events were acknowledged by the broker: the
            # effects recorded, nothing published, the offsets not committed.
            units = frozenset(policy.units.ids())
            senders = load_senders(policy_dir, units)
            handler = CommandHandler(WorkOrderRepository(engine), units, policy.lifecycle, senders)
            first = handler.handle(
                [
                    InboundMessage(
                        topics.commands, 0, n, order_id.encode(), c, None, tuple(signed_headers(key, c))
                    )
                    for n, c in enumerate(commands)
                ],
                datetime.now(UTC),
            )
            assert [outcome.outcome for outcome in first.outcomes] == ["applied", "applied"]
            # The broker delivers the un-acked commands again, to the restarted worker.
            _produce(
                broker.bootstrap,
                [(topics.commands, order_id.encode(), c) for c in commands],
                lambda value: signed_headers(key, value),
            )

            def caught_up() -> bool:
                end = crash.end_offsets(broker.bootstrap, [topics.commands])
                commands_group = Settings(consumer_group=group).commands_consumer_group
                committed = crash.committed_offsets(broker.bootstrap, commands_group, list(end))
                return all(committed[tp] >= offset for tp, offset in end.items())

            wait_for(caught_up, TIMEOUT_S, "the commands to be handled", describe=worker.log_text)
            records = crash.read_topic(broker.bootstrap, topics.lifecycle)
            lifecycle = {json.loads(r.value)["command_id"] for r in records}
            squads = [
                json.loads(r.value)["squad"]
                for r in crash.read_topic(broker.bootstrap, topics.dispatched)
                if json.loads(r.value)["work_order_id"] == order_id
            ]
            assert worker.stop() == 0, worker.log_text()[-4000:]
        finally:
            worker.kill()
            engine.dispose()
    command_ids = {json.loads(c)["command_id"] for c in commands}
    assert lifecycle >= command_ids, f"lifecycle events never published for {sorted(command_ids - lifecycle)}"
    assert "squad-2" in squads, f"the reassigned order never published to squad-2 (published to {squads})"
