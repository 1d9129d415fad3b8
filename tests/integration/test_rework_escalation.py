"""提级督办 on SQLite and PostgreSQL: the send-back that reaches the policy's number of
reworks records its leadership escalation (the escalation row and the order's history entry)
in the command's own transaction, once per order and level: not again when the command is
delivered again, nor at a later rework (after an extension moved the deadline), nor by the
leader's escalation check. Commands are signed and go through the worker's handler."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.test_signed_commands import POLICY, SENDER, SENDERS, message
from tests.integration.test_workflow_commands import CALENDAR, CLOCKS, OFFICERS, night_ban_alarm
from workorder_pipeline.config.settings import ProcessingGuarantee
from workorder_pipeline.services.commands import CommandHandler
from workorder_pipeline.services.escalations import Escalations
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.repository import WorkOrderRepository
from workorder_pipeline.storage.tables import escalation

pytestmark = [pytest.mark.integration]

CREATED = datetime.fromisoformat("2026-11-23T08:00:00+08:00")
LEVEL = "rework_escalated"


@pytest.fixture
def repository(database_url: str) -> Iterator[WorkOrderRepository]:
    migrate(database_url)
    engine = create_engine(database_url)
    try:
        yield WorkOrderRepository(engine)
    finally:
        engine.dispose()


def handler_for(repository: WorkOrderRepository, guarantee: ProcessingGuarantee) -> CommandHandler:
    units = frozenset(POLICY.units.ids())
    return CommandHandler(repository, units, POLICY.lifecycle, SENDERS, guarantee, clocks=CLOCKS)


def command(order_id: str, action: str, unit: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "schema": "workorder-command/1",
        "command_id": f"cmd-{uuid.uuid4().hex}",
        "work_order_id": order_id,
        "action": action,
        "actor": {"unit": unit, "officer_ids": OFFICERS},
        "at": at.isoformat(),
        **fields,
    }


class Desk:
    """Sends signed commands about one order, each from the next offset of the topic."""

    def __init__(self, handler: CommandHandler, order_id: str) -> None:
        self.handler, self.order_id, self.offset = handler, order_id, 0

    def send(self, document: dict[str, Any], offset: int | None = None) -> Any:
        if offset is None:
            self.offset += 1
            offset = self.offset
        (outcome,) = self.handler.handle([message(document, offset, SENDER)], document_at(document)).outcomes
        return outcome

    def __call__(self, action: str, unit: str, at: datetime, **fields: Any) -> Any:
        return self.send(command(self.order_id, action, unit, at, **fields))


def document_at(document: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(document["at"])


def escalations_of(repository: WorkOrderRepository, order_id: str) -> list[dict[str, Any]]:
    with repository.engine.connect() as conn:
        rows = conn.execute(
            sa.select(escalation).where(escalation.c.work_order_id == order_id, escalation.c.level == LEVEL)
        ).mappings()
        return [dict(row) for row in rows]


def history_levels(repository: WorkOrderRepository, order_id: str) -> list[str]:
    history = repository.history(order_id)
    return [row["detail"]["level"] for row in history if row["type"] == "escalated"]


def worked_twice_more(desk: Desk) -> None:
    """Accepted, then sent back twice: the next send-back is the policy's third."""
    for action in ("accept", "start"):
        assert desk(action, "squad-1", CREATED).outcome == "applied"
    for round_ in (1, 2):
        at = CREATED + timedelta(minutes=round_)
        assert desk("feedback", "squad-1", at, disposition="unfounded").outcome == "applied"
        assert desk("reopen", "command-center", at, note="照片缺失").outcome == "applied"
    at = CREATED + timedelta(minutes=3)
    assert desk("feedback", "squad-1", at, disposition="unfounded").outcome == "applied"


@pytest.mark.parametrize("guarantee", list(ProcessingGuarantee))
def test_the_third_rework_is_escalated_with_the_command_once_even_delivered_again(
    repository: WorkOrderRepository, guarantee: ProcessingGuarantee
) -> None:
    order_id = night_ban_alarm(repository, CREATED)
    desk = Desk(handler_for(repository, guarantee), order_id)
    worked_twice_more(desk)
    assert escalations_of(repository, order_id) == []
    at = CREATED + timedelta(minutes=4)
    third = command(order_id, "reopen", "command-center", at, note="仍未整改")
    outcome = desk.send(third)
    third_offset = desk.offset
    assert outcome.outcome == "applied" and outcome.event.detail["raised_to_leadership"] is True

    # Recorded by the command itself: no escalation check has run.
    order = repository.get(order_id)
    assert order is not None
    (row,) = escalations_of(repository, order_id)
    assert (row["unit"], row["due_at"], row["fired_at"], row["published_at"]) == (
        "squad-1",
        order.due_at,
        at,
        None,
    )
    assert history_levels(repository, order_id) == [LEVEL]
    pending = [m for m in Escalations(repository, POLICY.deadlines, CALENDAR).pending() if m.level == LEVEL]
    assert [(m.recipient, m.work_order_id) for m in pending] == [("leadership", order_id)]

    # The same command again: from a later offset (re-sent), and from its own offset (the
    # exactly-once redelivery of a batch whose Kafka transaction never committed).
    assert desk.send(third).outcome == "duplicate"
    assert desk.send(third, offset=third_offset).outcome == "duplicate"
    assert len(escalations_of(repository, order_id)) == 1

    # The leader's check, before and long after the deadline, fires no second one.
    escalations = Escalations(repository, POLICY.deadlines, CALENDAR)
    for later in (at, at + timedelta(hours=1), order.due_at + timedelta(days=5)):
        escalations.fire(later)
    assert len(escalations_of(repository, order_id)) == 1
    assert history_levels(repository, order_id).count(LEVEL) == 1


def test_a_fourth_rework_after_an_extension_is_not_escalated_again(repository: WorkOrderRepository) -> None:
    """Once per order and level, not per deadline: the extension gives the order a new
    due_at, and the fourth send-back still finds the order at leadership already."""
    order_id = night_ban_alarm(repository, CREATED)
    desk = Desk(handler_for(repository, ProcessingGuarantee.at_least_once), order_id)
    worked_twice_more(desk)
    at = CREATED + timedelta(minutes=4)
    assert desk("reopen", "command-center", at, note="仍未整改").outcome == "applied"
    first_due = escalations_of(repository, order_id)[0]["due_at"]
    later_due = (CREATED + timedelta(days=10)).isoformat()
    assert desk("extend", "command-center", at, new_due_at=later_due, note="提级后延长").outcome == "applied"
    assert desk("feedback", "squad-1", at, disposition="unfounded").outcome == "applied"
    fourth = desk("reopen", "command-center", at + timedelta(minutes=1), note="第四次")
    assert fourth.outcome == "applied" and fourth.event.detail["rework_count"] == 4
    assert [row["due_at"] for row in escalations_of(repository, order_id)] == [first_due]
    Escalations(repository, POLICY.deadlines, CALENDAR).fire(at + timedelta(hours=1))
    assert history_levels(repository, order_id).count(LEVEL) == 1


def test_the_third_send_back_in_one_batch_with_the_second_is_escalated_once(
    repository: WorkOrderRepository,
) -> None:
    """Feedback and send-backs in one batch (one transaction): the count reached inside the
    batch escalates once, and the batch's duplicate of the third command adds nothing."""
    order_id = night_ban_alarm(repository, CREATED)
    handler = handler_for(repository, ProcessingGuarantee.at_least_once)
    desk = Desk(handler, order_id)
    for action in ("accept", "start"):
        assert desk(action, "squad-1", CREATED).outcome == "applied"
    documents = []
    for round_ in (1, 2, 3):
        at = CREATED + timedelta(minutes=round_)
        documents.append(command(order_id, "feedback", "squad-1", at, disposition="unfounded"))
        documents.append(command(order_id, "reopen", "command-center", at, note=f"第{round_}次"))
    documents.append(documents[-1])
    messages = [message(document, 100 + i, SENDER) for i, document in enumerate(documents)]
    outcomes = handler.handle(messages, CREATED + timedelta(minutes=5)).outcomes
    assert [o.outcome for o in outcomes] == ["applied"] * 6 + ["duplicate"]
    assert len(escalations_of(repository, order_id)) == 1
    assert history_levels(repository, order_id) == [LEVEL]
