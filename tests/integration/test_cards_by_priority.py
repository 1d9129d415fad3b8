"""Yellow cards by priority with the shipped policy, on SQLite and PostgreSQL, through the
leader's escalation check: an urgent (P1) order is not warned the moment it is opened (one
working day before a 24-hour deadline would be then) but 4 hours before its deadline; a P3
order still one working day before its own, across the weekend."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from tests.integration.pipeline_support import REPO_ROOT
from tests.integration.test_signed_commands import POLICY
from tests.integration.test_workflow_commands import CALENDAR
from workorder_pipeline.config.settings import Topics
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.services.escalations import Escalations
from workorder_pipeline.services.intake import InboundMessage, Intake
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.repository import WorkOrderRepository

pytestmark = [pytest.mark.integration]

MONDAY = datetime.fromisoformat("2026-11-23T08:00:00+08:00")
ALARMS = (REPO_ROOT / "samples" / "vehicle-alarms.jsonl").read_text(encoding="utf-8").splitlines()


@pytest.fixture
def repository(database_url: str) -> Iterator[WorkOrderRepository]:
    migrate(database_url)
    engine = create_engine(database_url)
    try:
        yield WorkOrderRepository(engine)
    finally:
        engine.dispose()


def opened(repository: WorkOrderRepository, line: int, priority: str) -> tuple[str, datetime]:
    intake = Intake(compile_policy(POLICY), repository, Topics().inbound())
    inbound = InboundMessage(Topics().vehicle_alarms, 0, line, None, ALARMS[line].encode())
    (order,) = intake.handle([inbound], MONDAY).created
    intake.dispatched([order], MONDAY)
    assert order.priority == priority
    return order.id, order.due_at


def yellow_cards(escalations: Escalations, at: datetime) -> list[str]:
    escalations.fire(at)
    return [m.work_order_id for m in escalations.pending() if m.level == "yellow_card"]


def test_a_fresh_p1_order_gets_its_yellow_card_four_hours_before_its_deadline_not_at_once(
    repository: WorkOrderRepository,
) -> None:
    order_id, due_at = opened(repository, 3, "P1")  # the night-ban coach alarm
    assert due_at == datetime.fromisoformat("2026-11-24T08:00:00+08:00")
    escalations = Escalations(repository, POLICY.deadlines, CALENDAR)
    for at in (MONDAY, MONDAY + timedelta(minutes=1), MONDAY + timedelta(hours=12)):
        assert yellow_cards(escalations, at) == []
    four_hours_before = datetime.fromisoformat("2026-11-24T04:00:00+08:00")
    assert yellow_cards(escalations, four_hours_before - timedelta(seconds=1)) == []
    assert yellow_cards(escalations, four_hours_before) == [order_id]
    escalations.published(escalations.pending(), four_hours_before)
    assert yellow_cards(escalations, due_at + timedelta(days=2)) == []


def test_a_p3_order_still_gets_its_yellow_card_one_working_day_before(
    repository: WorkOrderRepository,
) -> None:
    order_id, due_at = opened(repository, 0, "P3")
    # Due at the end of Monday 30 November: one working day before is the end of Friday 27th.
    assert due_at == datetime.fromisoformat("2026-12-01T00:00:00+08:00")
    end_of_friday = datetime.fromisoformat("2026-11-28T00:00:00+08:00")
    assert CALENDAR.shift_working_days(due_at, -1).due_at == end_of_friday
    escalations = Escalations(repository, POLICY.deadlines, CALENDAR)
    assert yellow_cards(escalations, MONDAY) == []
    assert yellow_cards(escalations, end_of_friday - timedelta(seconds=1)) == []
    assert yellow_cards(escalations, end_of_friday) == [order_id]
