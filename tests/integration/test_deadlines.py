"""Provisional deadlines are recounted when the year's official schedule is loaded."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from workorder_pipeline.config.settings import Topics
from workorder_pipeline.processors.calendar import WorkCalendar, YearSchedule
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.services.calendar_files import package_schedules
from workorder_pipeline.services.deadlines import recompute_provisional_deadlines
from workorder_pipeline.services.intake import InboundMessage, Intake
from workorder_pipeline.services.policy_files import load_policy
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.repository import WorkOrderRepository

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CST = timezone(timedelta(hours=8))
POLICY = load_policy(ROOT / "policy")
TOPICS = Topics()
# 30 Dec 2026, 10:00 in China: a P3 suspect has 5 working days, reaching into 2027.
CREATED = datetime(2026, 12, 30, 10, 0, tzinfo=CST)


@pytest.fixture
def repository(database_url: str) -> Iterator[WorkOrderRepository]:
    migrate(database_url)
    engine = create_engine(database_url)
    yield WorkOrderRepository(engine)
    engine.dispose()


def suspect_message() -> InboundMessage:
    line = (ROOT / "samples" / "suspects.jsonl").read_text(encoding="utf-8").splitlines()[0]
    return InboundMessage(TOPICS.suspects, 0, 0, None, line.encode())


def test_a_provisional_deadline_is_recounted_when_the_schedule_arrives(
    repository: WorkOrderRepository,
) -> None:
    without_2027 = WorkCalendar(package_schedules())
    intake = Intake(compile_policy(POLICY), repository, TOPICS.inbound(), calendar=without_2027)
    (order,) = intake.handle([suspect_message()], CREATED).created
    assert order.deadline_provisional
    # 31 Dec, then (provisionally) 4-7 Jan 2027: 1 Jan is a fixed-date holiday.
    assert order.due_at == datetime(2027, 1, 8, tzinfo=CST)

    # Nothing to recount while 2027 is still unknown.
    assert recompute_provisional_deadlines(repository, without_2027, POLICY.deadlines, CREATED) == []

    # The State Council publishes 2027: 4 Jan off, Saturday 9 Jan worked.
    official = YearSchedule(
        2027, frozenset({date(2027, 1, 1), date(2027, 1, 4)}), frozenset({date(2027, 1, 9)})
    )
    with_2027 = WorkCalendar({**package_schedules(), 2027: official})
    later = CREATED + timedelta(days=1)
    (changed,) = recompute_provisional_deadlines(repository, with_2027, POLICY.deadlines, later)
    assert changed.id == order.id
    assert changed.due_at == datetime(2027, 1, 9, tzinfo=CST)
    assert not changed.deadline_provisional

    stored = repository.get(order.id)
    assert stored is not None
    assert stored.due_at == changed.due_at
    assert not stored.deadline_provisional
    (event,) = [e for e in repository.history(order.id) if e["type"] == "deadline_changed"]
    assert event["detail"]["provisional"] is False
    assert json.dumps(event["detail"])  # the audit detail is plain JSON

    # Recounting again changes nothing.
    assert recompute_provisional_deadlines(repository, with_2027, POLICY.deadlines, later) == []
