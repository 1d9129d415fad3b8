"""Reminders and escalations fire once: not twice after a restart, and none lost while down."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from workorder_pipeline.config.settings import Topics
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.services.escalations import Escalations
from workorder_pipeline.services.intake import InboundMessage, Intake
from workorder_pipeline.services.policy_files import load_policy
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.repository import WorkOrderRepository

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
POLICY = load_policy(ROOT / "policy")
TOPICS = Topics()


@pytest.fixture
def repository(database_url: str) -> Iterator[WorkOrderRepository]:
    migrate(database_url)
    engine = create_engine(database_url)
    yield WorkOrderRepository(engine)
    engine.dispose()


def dispatched_order(repository: WorkOrderRepository, now: datetime) -> str:
    """The sample night-ban coach alarm: P1, due 24 hours after it is created."""
    line = (ROOT / "samples" / "vehicle-alarms.jsonl").read_text(encoding="utf-8").splitlines()[3]
    intake = Intake(compile_policy(POLICY), repository, TOPICS.inbound())
    (order,) = intake.handle([InboundMessage(TOPICS.vehicle_alarms, 0, 0, None, line.encode())], now).created
    intake.dispatched([order], now)
    return order.id


def test_escalations_fire_once_each_even_when_checked_again(repository: WorkOrderRepository) -> None:
    created = datetime.fromisoformat("2026-11-23T08:00:00+08:00")
    order_id = dispatched_order(repository, created)
    escalations = Escalations(repository, POLICY.deadlines)

    assert escalations.fire(created + timedelta(hours=17)) == 0  # before 75% of 24 h
    assert escalations.fire(created + timedelta(hours=18)) == 1  # the reminder
    assert escalations.fire(created + timedelta(hours=18, minutes=1)) == 0  # not again
    (reminder,) = escalations.pending()
    assert (reminder.level, reminder.recipient, reminder.work_order_id) == ("reminder", "squad-1", order_id)
    escalations.published([reminder], created + timedelta(hours=18))
    assert escalations.pending() == []

    # The worker was down from hour 18 to hour 60: both escalations fire on its return, once.
    assert escalations.fire(created + timedelta(hours=60)) == 2
    assert escalations.fire(created + timedelta(hours=61)) == 0
    pending = escalations.pending()
    assert [(m.level, m.recipient) for m in pending] == [
        ("overdue", "command-center"),
        ("leadership", "leadership"),
    ]
    assert pending[0].overdue_seconds == 36 * 3600

    history = [e["type"] for e in repository.history(order_id)]
    assert history.count("reminder_sent") == 1
    assert history.count("escalated") == 2


def test_published_escalations_are_not_published_again(repository: WorkOrderRepository) -> None:
    created = datetime.fromisoformat("2026-11-23T08:00:00+08:00")
    dispatched_order(repository, created)
    escalations = Escalations(repository, POLICY.deadlines)
    escalations.fire(created + timedelta(days=3))
    first = escalations.pending()
    assert len(first) == 3
    # A restart between publishing and marking re-publishes (at least once); after marking, never.
    assert [m.escalation_id for m in escalations.pending()] == [m.escalation_id for m in first]
    escalations.published(first, created + timedelta(days=3))
    assert escalations.pending() == []
    assert escalations.fire(created + timedelta(days=4)) == 0


def test_every_running_order_is_checked_when_they_span_several_reads(database_url: str) -> None:
    """The check reads running orders a chunk at a time (a province has far too many to hold
    at once): orders in every chunk fire, each once."""
    migrate(database_url)
    engine = create_engine(database_url)
    try:
        created = datetime.fromisoformat("2026-11-23T08:00:00+08:00")
        sample = json.loads(
            (ROOT / "samples" / "vehicle-alarms.jsonl").read_text(encoding="utf-8").splitlines()[3]
        )
        repository = WorkOrderRepository(engine)
        intake = Intake(compile_policy(POLICY), repository, TOPICS.inbound())
        messages = [  # seven vehicles: seven orders
            InboundMessage(
                TOPICS.vehicle_alarms,
                0,
                n,
                None,
                json.dumps({**sample, "alarm_id": f"CHUNK-{n}", "plate": f"苏F2C51{n}"}).encode(),
            )
            for n in range(7)
        ]
        result = intake.handle(messages, created)
        intake.dispatched(result.created, created)
        assert len(result.created) == 7, [d.detail for d in result.dead_letters]

        # Looked at first at their first clock: the acceptance reminder, 30 min in.
        assert list(repository.orders_to_check(created + timedelta(minutes=29), chunk=3)) == []
        at = created + timedelta(hours=18)  # the reminder, 6 h before the 24-h deadline
        chunks = list(repository.orders_to_check(at, chunk=3))
        assert [len(chunk) for chunk in chunks] == [3, 3, 1]
        assert sorted(row["id"] for chunk in chunks for row in chunk) == sorted(o.id for o in result.created)

        escalations = Escalations(repository, POLICY.deadlines)
        assert escalations.fire(at) == 7
        assert escalations.fire(at) == 0
    finally:
        engine.dispose()
