"""The workflow of issue 18 through CommandHandler on SQLite and PostgreSQL: the acceptance
deadline stored and restarted, extension requests decided, and no closing of a reworked
order without new feedback. Commands are signed; the database is real."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.pipeline_support import REPO_ROOT
from tests.integration.test_signed_commands import POLICY, SENDER, SENDERS, dispatched_order, message
from workorder_pipeline.config.settings import Topics
from workorder_pipeline.processors.clocks import accept_due_at
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.processors.lifecycle import Clocks
from workorder_pipeline.services.calendar_files import load_calendar
from workorder_pipeline.services.commands import CommandHandler
from workorder_pipeline.services.escalations import Escalations
from workorder_pipeline.services.intake import InboundMessage, Intake
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.repository import WorkOrderRepository

pytestmark = [pytest.mark.integration]

CALENDAR = load_calendar(REPO_ROOT / "policy")
CLOCKS = Clocks(CALENDAR, POLICY.deadlines.acceptance, POLICY.deadlines.cutoff)
OFFICERS = ["JS0682-0117", "JS0682-0342"]


@pytest.fixture
def repository(database_url: str) -> Iterator[WorkOrderRepository]:
    migrate(database_url)
    engine = create_engine(database_url)
    try:
        yield WorkOrderRepository(engine)
    finally:
        engine.dispose()


@pytest.fixture
def handler(repository: WorkOrderRepository) -> CommandHandler:
    return CommandHandler(repository, frozenset(POLICY.units.ids()), POLICY.lifecycle, SENDERS, clocks=CLOCKS)


class Sender:
    def __init__(self, handler: CommandHandler, order_id: str) -> None:
        self.handler, self.order_id, self.offset = handler, order_id, 0

    def __call__(self, action: str, unit: str, at: datetime, **fields: Any) -> Any:
        document = {
            "schema": "workorder-command/1",
            "command_id": f"cmd-{uuid.uuid4().hex}",
            "work_order_id": self.order_id,
            "action": action,
            "actor": {"unit": unit, "officer_ids": OFFICERS},
            "at": at.isoformat(),
            **fields,
        }
        self.offset += 1
        (outcome,) = self.handler.handle([message(document, self.offset, SENDER)], at).outcomes
        return outcome


def test_a_new_order_carries_its_acceptance_deadline_and_reassignment_restarts_it(
    repository: WorkOrderRepository, handler: CommandHandler
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    order = dispatched_order(repository, now)
    stored = repository.get(order.id)
    assert stored is not None and stored.accept_due_at is not None
    assert POLICY.deadlines.acceptance is not None
    limit = POLICY.deadlines.acceptance.limit(order.kind, order.priority)
    if limit.hours is not None:
        assert stored.accept_due_at == now + timedelta(hours=limit.hours)
    assert json.loads(stored.dispatch_message().model_dump_json())["accept_due_at"] is not None

    later = now + timedelta(days=3)
    target = "squad-2" if order.unit != "squad-2" else "squad-1"
    outcome = Sender(handler, order.id)("reassign", "command-center", later, to_unit=target)
    assert outcome.outcome == "applied", outcome.refusal
    moved = repository.get(order.id)
    assert moved is not None and moved.accept_due_at is not None
    acceptance = POLICY.deadlines.acceptance
    expected = accept_due_at(later, order.kind, order.priority, acceptance, CALENDAR, POLICY.deadlines.cutoff)
    assert moved.accept_due_at == expected > stored.accept_due_at
    assert moved.dispatch_message().accept_due_at == moved.accept_due_at


def test_an_extension_asked_and_granted_in_part_moves_the_stored_deadline_on_the_calendar(
    repository: WorkOrderRepository, handler: CommandHandler
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    order = dispatched_order(repository, now)
    send = Sender(handler, order.id)
    for action in ("accept", "start"):
        assert send(action, order.unit, now).outcome == "applied"
    asked = send("request_extension", order.unit, now, note="等待当事人到案", extension={"working_days": 3})
    assert asked.outcome == "applied", asked.refusal
    waiting = repository.get(order.id)
    assert waiting is not None and (waiting.pending_extension_days, waiting.extension_requested_at) == (
        3,
        now,
    )
    again = send("request_extension", order.unit, now, note="再次", extension={"hours": 2})
    assert (again.outcome, again.refusal.code) == ("rejected", "extension_pending")

    granted = send(
        "approve_extension", "command-center", now + timedelta(hours=1), extension={"working_days": 1}
    )
    assert granted.outcome == "applied", granted.refusal
    stored = repository.get(order.id)
    assert stored is not None
    assert stored.due_at == CALENDAR.shift_working_days(order.due_at, 1).due_at
    assert (stored.pending_extension_days, stored.extension_requests, stored.extended_working_days) == (
        None,
        1,
        1,
    )
    assert granted.redispatch and granted.event.due_at == stored.due_at
    history = [
        (row["type"], row["detail"].get("granted_working_days")) for row in repository.history(order.id)
    ]
    assert ("extension_requested", None) in history and ("extension_approved", 1) in history
    # One request per order (lifecycle.yaml): the second is over the limit, and stays so.
    over = send(
        "request_extension", order.unit, now + timedelta(hours=2), note="x", extension={"working_days": 1}
    )
    assert (over.outcome, over.refusal.code) == ("rejected", "over_limit")
    nothing = send("reject_extension", "command-center", now + timedelta(hours=2), note="x")
    assert nothing.refusal.code == "no_extension_pending"


def test_a_reworked_order_is_counted_and_closes_only_after_new_feedback(
    repository: WorkOrderRepository, handler: CommandHandler
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    order = dispatched_order(repository, now)
    send = Sender(handler, order.id)
    for action, fields in (("accept", {}), ("start", {}), ("feedback", {"disposition": "unfounded"})):
        assert send(action, order.unit, now, **fields).outcome == "applied"
    assert send("reopen", "command-center", now, note="照片缺失").event.event == "rework_requested"
    assert (repository.get(order.id) or order).rework_count == 1
    refused = send("close", order.unit, now, disposition="unfounded")
    assert (refused.outcome, refused.refusal.code) == ("rejected", "needs_new_feedback")
    assert send("feedback", order.unit, now, disposition="case_filed").outcome == "applied"
    closed = send("close", order.unit, now)
    assert closed.outcome == "applied", closed.refusal
    assert [row["type"] for row in repository.history(order.id)].count("rework_requested") == 1


def night_ban_alarm(repository: WorkOrderRepository, now: datetime) -> str:
    """The sample night-ban coach alarm: P1, due 24 hours after it is created, squad-1's."""
    line = (REPO_ROOT / "samples" / "vehicle-alarms.jsonl").read_text(encoding="utf-8").splitlines()[3]
    intake = Intake(compile_policy(POLICY), repository, Topics().inbound())
    (order,) = intake.handle(
        [InboundMessage(Topics().vehicle_alarms, 0, 0, None, line.encode())], now
    ).created
    intake.dispatched([order], now)
    return order.id


def test_acceptance_clock_and_cards_fire_once_each_on_the_calendar(
    repository: WorkOrderRepository, handler: CommandHandler
) -> None:
    created = datetime.fromisoformat("2026-11-23T08:00:00+08:00")  # a Monday
    order_id = night_ban_alarm(repository, created)
    escalations = Escalations(repository, POLICY.deadlines, CALENDAR)

    def fire(at: datetime) -> list[tuple[str, str]]:
        escalations.fire(at)
        messages = escalations.pending()
        escalations.published(messages, at)
        return [(m.level, m.recipient) for m in messages]

    # Due Tuesday 08:00, a limit of hours: the P1 cards count hours (yellow 4 h before, red at it).
    assert fire(created + timedelta(minutes=29)) == []
    assert fire(created + timedelta(minutes=30)) == [("accept_reminder", "squad-1")]
    assert fire(created + timedelta(hours=1)) == [("accept_overdue", "command-center")]
    assert fire(created + timedelta(hours=1, minutes=5)) == []
    assert Sender(handler, order_id)("accept", "squad-1", created + timedelta(hours=2)).outcome == "applied"
    assert fire(created + timedelta(hours=18)) == [("reminder", "squad-1")]
    assert fire(created + timedelta(hours=20)) == [("yellow_card", "squad-1")]
    assert fire(created + timedelta(hours=24)) == [("overdue", "command-center"), ("red_card", "squad-1")]
    assert fire(created + timedelta(hours=48)) == [("leadership", "leadership")]
    assert fire(created + timedelta(days=5)) == []
    audit = [row["detail"].get("level") for row in repository.history(order_id) if row["type"] == "escalated"]
    expected = ["yellow_card", "accept_reminder", "accept_overdue", "overdue", "red_card", "leadership"]
    assert sorted(audit) == sorted(expected)


def test_a_returned_order_not_rerouted_in_time_goes_to_leadership(
    repository: WorkOrderRepository, handler: CommandHandler
) -> None:
    created = datetime.fromisoformat("2026-11-23T08:00:00+08:00")
    order_id = night_ban_alarm(repository, created)
    send = Sender(handler, order_id)
    assert send("accept", "squad-1", created).outcome == "applied"
    returned_at = created + timedelta(minutes=10)
    assert send("return", "squad-1", returned_at, reason="unclear_ownership").outcome == "applied"
    escalations = Escalations(repository, POLICY.deadlines, CALENDAR)
    escalations.fire(returned_at + timedelta(hours=3, minutes=59))
    assert [m.level for m in escalations.pending() if m.level == "reroute_overdue"] == []
    escalations.fire(returned_at + timedelta(hours=4))
    rerouted = [m for m in escalations.pending() if m.level == "reroute_overdue"]
    assert [(m.recipient, m.unit) for m in rerouted] == [("leadership", "command-center")]
