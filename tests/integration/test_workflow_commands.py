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

from processors.clocks import accept_due_at
from processors.lifecycle import Clocks
from services.calendar_files import load_calendar
from services.commands import CommandHandler
from storage.database import create_engine, migrate
from storage.repository import WorkOrderRepository
from tests.integration.pipeline_support import REPO_ROOT
from tests.integration.test_signed_commands import POLICY, SENDER, SENDERS, dispatched_order, message

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
    again = send("request_extension", order.unit, now, note="再次", extension={"hours": 2})
    assert (again.outcome, again.refusal.code) == ("rejected", "extension_pending")

    granted = send(
        "approve_extension", "command-center", now + timedelta(hours=1), extension={"working_days": 1}
    )
    assert granted.outcome == "applied", granted.refusal
    stored = repository.get(order.id)
    assert stored is not None
    assert stored.due_at == CALENDAR.shift_working_days(order.due_at, 1).due_at
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
    refused = send("close", order.unit, now, disposition="unfounded")
    assert (refused.outcome, refused.refusal.code) == ("rejected", "needs_new_feedback")
    assert send("feedback", order.unit, now, disposition="case_filed").outcome == "applied"
    closed = send("close", order.unit, now)
    assert closed.outcome == "applied", closed.refusal
    assert [row["type"] for row in repository.history(order.id)].count("rework_requested") == 1
