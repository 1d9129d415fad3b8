"""streams/supervision.py and streams/platform_watch.py: the database gauges (leader only)
on SQLite and PostgreSQL, and the consumer lag, without a broker.

Orders are made by the real intake from the bundled samples and moved by the real
command handler, never hand-written rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.pipeline_support import REPO_ROOT, SAMPLES, file_lines
from workorder_pipeline.config.settings import Topics
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.schemas.commands import WorkOrderCommand
from workorder_pipeline.schemas.senders import SenderKeys
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import Priority
from workorder_pipeline.services.commands import CommandHandler
from workorder_pipeline.services.intake import InboundMessage, Intake
from workorder_pipeline.services.policy_files import load_policy, load_reference
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.order_gauges import OrderGauges
from workorder_pipeline.storage.repository import WorkOrderRepository
from workorder_pipeline.streams.supervision import (
    ConsumerLagCollector,
    PartitionPosition,
    SupervisionCollector,
    faust_leader,
    register,
)

pytestmark = pytest.mark.integration

TOPICS = Topics()
FILES = {
    "vehicle-alarms.jsonl": TOPICS.vehicle_alarms,
    "suspects.jsonl": TOPICS.suspects,
    "checkin-failures.jsonl": TOPICS.checkin_failures,
    "complaints.jsonl": TOPICS.complaints,
}
#: After every sample event; the last sample complaint is due 2026-11-27.
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
POLICY = load_policy(REPO_ROOT / "policy")
UNITS = sorted(POLICY.units.ids())
Samples = dict[tuple[str, ...], float]


@pytest.fixture
def repository(database_url: str) -> Iterator[WorkOrderRepository]:
    migrate(database_url)
    engine = create_engine(database_url)
    repository = WorkOrderRepository(engine)
    reference = load_reference(REPO_ROOT / "policy")
    intake = Intake(compile_policy(POLICY), repository, TOPICS.inbound(), reference=lambda: reference)
    messages = [
        InboundMessage(topic, 0, offset, None, line)
        for name, topic in FILES.items()
        for offset, line in enumerate(file_lines(SAMPLES / name))
    ]
    result = intake.handle(messages, NOW)
    intake.dispatched(result.to_dispatch, NOW)
    # Close one order the real way.
    alarm = next(o for o in result.created if o.kind is SignalKind.vehicle_alarm)
    at = NOW + timedelta(minutes=30)
    # execute() is what the API's and the worker's checked commands come to: no signature here.
    handler = CommandHandler(repository, frozenset(UNITS), POLICY.lifecycle, SenderKeys())
    base = {"work_order_id": alarm.id, "actor": {"unit": alarm.unit, "officer_ids": ["o-1", "o-2"]}, "at": at}
    commands = [
        WorkOrderCommand.model_validate({**base, "command_id": f"s-{action}", "action": action, **extra})
        for action, extra in [("accept", {}), ("start", {}), ("close", {"disposition": "unfounded"})]
    ]
    assert [o.outcome for o in handler.execute(commands, at)] == ["applied"] * 3
    yield repository
    engine.dispose()


def fake_app(**attributes: Any) -> Any:
    """What the collectors use of a faust app: ``_consumer`` and ``is_leader``."""
    return SimpleNamespace(**attributes)


def scrape(collector: Any) -> dict[str, Samples]:
    registry = CollectorRegistry()
    registry.register(collector)
    found: dict[str, Samples] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            labels = tuple(
                sample.labels[name] for name in ("unit", "kind", "priority") if name in sample.labels
            )
            found.setdefault(sample.name, {})[labels] = sample.value
    return found


def expected(repository: WorkOrderRepository, now: datetime) -> tuple[Counter[tuple[str, ...]], ...]:
    open_: Counter[tuple[str, ...]] = Counter()
    overdue: Counter[tuple[str, ...]] = Counter()
    for order in repository.list_orders(now=now, limit=10_000):
        if order.status.value != "closed":
            key = (order.unit, order.kind.value, order.priority.value)
            open_[key] += 1
            running = order.status.value != "returned"  # a returned order's clock is stopped
            overdue[key] += 1 if running and order.due_at < now else 0
    return open_, overdue


def test_only_the_leader_exports_the_database_gauges(repository: WorkOrderRepository) -> None:
    follower = scrape(
        SupervisionCollector(OrderGauges(repository.engine), UNITS, lambda: False, clock=lambda: NOW)
    )
    assert set(follower) == {"wo_worker_is_leader", "wo_supervision_query_failures_total"}
    assert follower["wo_worker_is_leader"] == {(): 0.0}

    leader = scrape(
        SupervisionCollector(OrderGauges(repository.engine), UNITS, lambda: True, clock=lambda: NOW)
    )
    assert leader["wo_worker_is_leader"] == {(): 1.0}
    assert leader["wo_supervision_query_failures_total"] == {(): 0.0}
    open_, overdue = expected(repository, NOW)
    assert sum(open_.values()) == repository.count() - 1  # one was closed
    every = {(u, k.value, p.value) for u in UNITS for k in SignalKind for p in Priority}
    # Every unit, kind and priority has its series (zero when nothing is open), so a unit
    # whose last open order closes shows 0, not a gap.
    assert leader["wo_work_orders_open"] == {key: float(open_[key]) for key in every}
    assert leader["wo_work_orders_overdue"] == {key: float(overdue[key]) for key in every}
    assert sum(overdue.values()) >= 1  # the 12395 complaint due 2026-11-23 06:38+08:00
    ages = leader["wo_work_orders_oldest_open_age_seconds"]
    assert set(ages) == {key for key, count in open_.items() if count}
    assert set(ages.values()) == {0.0}  # every order was created at NOW


def test_overdue_follows_the_clock(repository: WorkOrderRepository) -> None:
    later = NOW + timedelta(days=30)
    gauges = scrape(
        SupervisionCollector(OrderGauges(repository.engine), UNITS, lambda: True, clock=lambda: later)
    )
    assert gauges["wo_work_orders_overdue"] == gauges["wo_work_orders_open"]
    assert set(gauges["wo_work_orders_oldest_open_age_seconds"].values()) == {30 * 86400.0}


def test_a_returned_order_is_open_at_the_command_center_but_never_overdue(
    repository: WorkOrderRepository,
) -> None:
    order = next(o for o in repository.list_orders(now=NOW, limit=100) if o.status.value == "dispatched")
    handler = CommandHandler(repository, frozenset(UNITS), POLICY.lifecycle, SenderKeys())
    at = NOW + timedelta(minutes=5)
    returned = WorkOrderCommand.model_validate(
        {
            "command_id": "s-return",
            "work_order_id": order.id,
            "action": "return",
            "reason": "misrouted",
            "actor": {"unit": order.unit, "officer_ids": ["o-1"]},
            "at": at,
        }
    )
    assert [o.outcome for o in handler.execute([returned], at)] == ["applied"]
    key = ("command-center", order.kind.value, order.priority.value)
    long_after = order.due_at + timedelta(days=30)
    gauges = scrape(
        SupervisionCollector(OrderGauges(repository.engine), UNITS, lambda: True, clock=lambda: long_after)
    )
    others_open, _ = expected(repository, long_after)
    assert gauges["wo_work_orders_open"][key] == others_open[key] >= 1
    assert gauges["wo_work_orders_overdue"][key] == gauges["wo_work_orders_open"][key] - 1
    # `wo orders list --overdue` (the API's overdue filter) says the same.
    listed = {o.id for o in repository.list_orders(now=long_after, overdue=True, limit=10_000)}
    assert order.id not in listed
    # Re-routed, its clock runs again (its due_at moved by the time it waited).
    reassign = WorkOrderCommand.model_validate(
        {
            "command_id": "s-reassign",
            "work_order_id": order.id,
            "action": "reassign",
            "to_unit": "squad-1",
            "actor": {"unit": "command-center", "officer_ids": ["o-9"]},
            "at": at + timedelta(hours=1),
        }
    )
    assert [o.outcome for o in handler.execute([reassign], at + timedelta(hours=1))] == ["applied"]
    gauges = scrape(
        SupervisionCollector(OrderGauges(repository.engine), UNITS, lambda: True, clock=lambda: long_after)
    )
    key = ("squad-1", order.kind.value, order.priority.value)
    assert gauges["wo_work_orders_overdue"][key] == gauges["wo_work_orders_open"][key]
    assert order.id in {o.id for o in repository.list_orders(now=long_after, overdue=True, limit=10_000)}


def test_a_database_error_fails_no_scrape(repository: WorkOrderRepository) -> None:
    class Broken:
        calls = 0

        def open_order_stats(self, now: datetime) -> list[dict[str, Any]]:
            self.calls += 1
            raise OSError("database unavailable")

    broken = Broken()
    registry = CollectorRegistry()
    register(fake_app(_consumer=None), broken, UNITS, TOPICS.inbound(), registry=registry)
    assert broken.calls == 0  # registering asks nothing of the database
    collector = SupervisionCollector(broken, UNITS, lambda: True)
    for attempt in (1, 2):
        gauges = scrape(collector)
        assert "wo_work_orders_open" not in gauges
        assert gauges["wo_supervision_query_failures_total"] == {(): float(attempt)}


def test_leadership_is_false_until_the_consumer_exists_and_on_errors() -> None:
    assert faust_leader(fake_app(_consumer=None))() is False

    def broken() -> bool:
        raise RuntimeError("rebalancing")

    assert faust_leader(fake_app(_consumer=object(), is_leader=broken))() is False
    assert faust_leader(fake_app(_consumer=object(), is_leader=lambda: True))() is True


def test_consumer_lag_sums_this_workers_partitions_per_topic() -> None:
    alarms, complaints, leader = TOPICS.vehicle_alarms, TOPICS.complaints, "wo-pipeline-__assignor-__leader"
    positions = [
        PartitionPosition(alarms, 0, 120, 100),  # 20 behind
        PartitionPosition(alarms, 3, 7, 0),  # nothing committed yet: 7 behind
        PartitionPosition(alarms, 4, None, 0),  # log end not known: left out
        PartitionPosition(complaints, 1, 5, 5),  # caught up
        PartitionPosition(complaints, 2, 3, 9),  # committed past a re-created topic's end: 0, not -6
        PartitionPosition(leader, 0, 99, 0),  # faust's own topic: not ours
    ]
    topics = [*TOPICS.inbound(), TOPICS.commands]
    collector = ConsumerLagCollector([lambda: positions], topics)
    found: dict[str, dict[str, float]] = {}
    for family in collector.collect():
        for sample in family.samples:
            found.setdefault(sample.name, {})[sample.labels["topic"]] = sample.value
    assert found["wo_kafka_consumer_lag"] == {alarms: 27, complaints: 0}
    assert found["wo_kafka_assigned_partitions"] == {t: {alarms: 3, complaints: 2}.get(t, 0) for t in topics}

    idle = ConsumerLagCollector([list], topics)
    samples = [s for family in idle.collect() for s in family.samples]
    assert {s.name for s in samples} == {"wo_kafka_assigned_partitions"}
    assert {s.value for s in samples} == {0}
