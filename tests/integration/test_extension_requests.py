"""延期申请待审批 on SQLite and PostgreSQL: the command center lists the requests waiting
across orders, the order due first first, through the real API on the real database;
requests decided, dropped with their order (closed, returned, reassigned) or refused are
not listed. Commands are signed and go through the worker's handler."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.integration.pipeline_support import SAMPLES, file_lines
from tests.integration.test_signed_commands import POLICY, SENDER, SENDERS, TOPICS, message
from tests.integration.test_workflow_commands import CLOCKS, Sender
from workorder_pipeline.api.app import create_app
from workorder_pipeline.api.auth import Role, TokenEntry, Tokens, hash_token
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.schemas.commands import WorkOrderCommand
from workorder_pipeline.schemas.records import ExtensionRequestQuery
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import WorkOrder
from workorder_pipeline.services.commands import CommandHandler
from workorder_pipeline.services.intake import InboundMessage, Intake
from workorder_pipeline.services.ports import CommandNotPublished
from workorder_pipeline.storage.api_store import ApiStore
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.extension_requests_read import listing
from workorder_pipeline.storage.repository import WorkOrderRepository

pytestmark = [pytest.mark.integration]

FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
NOW = datetime.now(UTC).replace(microsecond=0)


class NoBroker:
    """The list only reads: a command sent here would be a test's mistake."""

    def publish(self, command: WorkOrderCommand) -> None:
        raise CommandNotPublished("these tests send commands through the handler")


@dataclass
class World:
    repository: WorkOrderRepository
    handler: CommandHandler
    client: TestClient
    now: datetime

    def listed(self, who: str = "command_center", **params: Any) -> Any:
        response = self.client.get(
            "/extension-requests", params=params, headers={"Authorization": f"Bearer {who}"}
        )
        assert response.status_code == 200, response.text
        return response.json()

    def in_progress(self, created: datetime, unit: str | None = None) -> tuple[WorkOrder, Sender]:
        order = _dispatched_alarm(self.repository, created)
        send = Sender(self.handler, order.id)
        if unit is not None and unit != order.unit:
            moved = send("reassign", "command-center", created, to_unit=unit)
            assert moved.outcome == "applied", moved.refusal
        stored = self.repository.get(order.id)
        assert stored is not None
        for action in ("accept", "start"):
            assert send(action, stored.unit, created).outcome == "applied"
        return stored, send


@pytest.fixture
def repository(database_url: str) -> Iterator[WorkOrderRepository]:
    migrate(database_url)
    engine = create_engine(database_url)
    try:
        yield WorkOrderRepository(engine)
    finally:
        engine.dispose()


@pytest.fixture
def world(repository: WorkOrderRepository) -> Iterator[World]:
    handler = CommandHandler(
        repository, frozenset(POLICY.units.ids()), POLICY.lifecycle, SENDERS, clocks=CLOCKS
    )
    # The tokens are their own names: what is tested here is who may list, not tokens.
    entries = [
        TokenEntry(
            name="cc", role=Role.command_center, sha256=hash_token("command_center"), expires_at=FAR_FUTURE
        ),
        TokenEntry(name="sv", role=Role.supervisor, sha256=hash_token("supervisor"), expires_at=FAR_FUTURE),
        TokenEntry(
            name="s1", role=Role.unit, unit="squad-1", sha256=hash_token("squad-1"), expires_at=FAR_FUTURE
        ),
    ]
    app = create_app(ApiStore(repository.engine), Tokens(entries), NoBroker(), clock=lambda: NOW)
    with TestClient(app) as client:
        yield World(repository, handler, client, NOW)


def test_waiting_requests_are_listed_across_orders_due_first_with_reason_and_time_left(world: World) -> None:
    later, later_send = world.in_progress(NOW - timedelta(hours=1), "squad-2")
    # Due well after the other whatever day it is today.
    moved = later_send(
        "extend", "command-center", NOW, new_due_at=(NOW + timedelta(days=30)).isoformat(), note="专项"
    )
    assert moved.outcome == "applied", moved.refusal
    sooner, sooner_send = world.in_progress(NOW - timedelta(days=1), "squad-1")
    quiet, _ = world.in_progress(NOW - timedelta(hours=2), "squad-1")
    asked_at = NOW - timedelta(minutes=30)
    assert (
        later_send(
            "request_extension", "squad-2", asked_at, note="等待车主到案", extension={"hours": 6}
        ).outcome
        == "applied"
    )
    assert (
        sooner_send(
            "request_extension", "squad-1", asked_at, note="需调取监控\n录像", extension={"working_days": 2}
        ).outcome
        == "applied"
    )
    rows = world.listed()
    assert [row["work_order_id"] for row in rows] == [sooner.id, later.id]
    assert quiet.id not in {row["work_order_id"] for row in rows}
    first = rows[0]
    assert (first["unit"], first["kind"], first["working_days"], first["hours"]) == (
        "squad-1",
        sooner.kind,
        2,
        None,
    )
    assert first["reason"] == "需调取监控\n录像"
    assert datetime.fromisoformat(first["requested_at"]) == asked_at
    assert datetime.fromisoformat(first["due_at"]) == sooner.due_at
    assert first["seconds_left"] == int((sooner.due_at - NOW).total_seconds())
    assert (rows[1]["hours"], rows[1]["working_days"], rows[1]["reason"]) == (6, None, "等待车主到案")

    assert [row["work_order_id"] for row in world.listed(unit="squad-2")] == [later.id]
    assert world.listed(kind="complaint") == []
    assert [row["work_order_id"] for row in world.listed(limit=1, offset=1)] == [later.id]
    assert world.listed("supervisor") == rows
    squad = world.client.get("/extension-requests", headers={"Authorization": "Bearer squad-1"})
    assert squad.status_code == 403


def test_a_request_made_at_the_deadline_itself_is_refused_and_never_listed(world: World) -> None:
    order, send = world.in_progress(NOW - timedelta(hours=1))
    at_deadline = send("request_extension", order.unit, order.due_at, note="迟到", extension={"hours": 1})
    assert (at_deadline.outcome, at_deadline.refusal.code) == ("rejected", "too_late")
    assert world.listed() == []
    just_before = order.due_at - timedelta(seconds=1)
    assert (
        send("request_extension", order.unit, just_before, note="最后一刻", extension={"hours": 1}).outcome
        == "applied"
    )
    (row,) = world.listed()
    # Listed after its deadline too (made in time, not decided in time): the time left is negative.
    assert row["work_order_id"] == order.id and row["seconds_left"] == int(
        (order.due_at - NOW).total_seconds()
    )


def test_a_request_decided_or_dropped_with_its_order_leaves_the_list(world: World) -> None:
    approved, approve = world.in_progress(NOW - timedelta(hours=3))
    rejected, reject = world.in_progress(NOW - timedelta(hours=2))
    returned, give_back = world.in_progress(NOW - timedelta(hours=1))
    asked = NOW - timedelta(minutes=10)
    for order, send in ((approved, approve), (rejected, reject), (returned, give_back)):
        assert (
            send("request_extension", order.unit, asked, note="理由", extension={"hours": 2}).outcome
            == "applied"
        )
    assert len(world.listed()) == 3
    assert approve("approve_extension", "command-center", NOW).outcome == "applied"
    assert reject("reject_extension", "command-center", NOW, note="理由不足").outcome == "applied"
    assert give_back("return", returned.unit, NOW, reason="unclear_ownership").outcome == "applied"
    assert world.listed() == []


@pytest.mark.parametrize("close_first", [True, False], ids=["closed-then-approved", "approved-then-closed"])
def test_an_approval_racing_the_close_leaves_one_outcome_and_nothing_waiting(
    world: World, close_first: bool
) -> None:
    """The close and the approval in one batch (one transaction, in either order): whichever
    comes second sees the first's effect, and no closed order keeps a request waiting."""
    order, send = world.in_progress(NOW - timedelta(hours=2))
    asked = send(
        "request_extension", order.unit, NOW - timedelta(hours=1), note="理由", extension={"hours": 2}
    )
    assert asked.outcome == "applied"
    close = _document(order, "close", order.unit, disposition="unfounded")
    approve = _document(order, "approve_extension", "command-center")
    batch = [close, approve] if close_first else [approve, close]
    outcomes = world.handler.handle([_signed(doc, 100 + i) for i, doc in enumerate(batch)], NOW).outcomes
    by_action = {o.command.action.value: o for o in outcomes}
    assert by_action["close"].outcome == "applied", by_action["close"].refusal
    if close_first:
        refusal = by_action["approve_extension"].refusal
        assert refusal is not None and refusal.code == "invalid_state"
    else:
        assert by_action["approve_extension"].outcome == "applied"
    stored = world.repository.get(order.id)
    assert stored is not None and stored.status == "closed"
    assert (stored.pending_extension_hours, stored.extension_requested_at) == (None, None)
    assert world.listed() == []


def test_a_request_sent_twice_is_listed_once(world: World) -> None:
    order, _ = world.in_progress(NOW - timedelta(hours=1))
    document = _document(order, "request_extension", order.unit, note="等待", extension={"hours": 3})
    first = world.handler.handle([_signed(document, 7)], NOW).outcomes[0]
    again = world.handler.handle([_signed(document, 8)], NOW).outcomes[0]
    assert (first.outcome, again.outcome) == ("applied", "duplicate")
    assert [row["work_order_id"] for row in world.listed()] == [order.id]
    assert world.repository.get(order.id).extension_requests == 1  # type: ignore[union-attr]


PENDING_ONLY = ("ix_work_order_pending_extension", "ix_work_order_extension_asked_created")


def test_the_list_reads_only_the_orders_with_a_request_waiting(world: World) -> None:
    """The query plan uses a partial index of pending requests: the cost is the requests,
    not the orders (PostgreSQL is told to avoid a full scan where it can: its tables here
    are small enough for one). Two such indexes exist, this list's (unit, due_at) and the
    console queue's (created_at, migration 0025): either reads only the waiting orders."""
    engine = world.repository.engine
    postgres = engine.dialect.name == "postgresql"
    for query in (ExtensionRequestQuery(), ExtensionRequestQuery(unit="squad-1", kind=SignalKind.complaint)):
        statement = listing(query).compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
        with engine.connect() as conn:
            if postgres:
                conn.execute(sa.text("SET enable_seqscan = off"))
            explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
            plan = " ".join(str(row) for row in conn.execute(sa.text(explain + str(statement))))
        assert any(index in plan for index in PENDING_ONLY), plan


def _dispatched_alarm(repository: WorkOrderRepository, created: datetime) -> WorkOrder:
    """A new order of its own (a plate no other order has, so nothing merges into another)."""
    alarm = json.loads(file_lines(SAMPLES / "vehicle-alarms.jsonl")[0])
    alarm |= {"alarm_id": uuid.uuid4().hex, "plate": f"苏F{next(_PLATES):05d}"}
    intake = Intake(compile_policy(POLICY), repository, TOPICS.inbound())
    inbound = InboundMessage(TOPICS.vehicle_alarms, 0, 0, None, json.dumps(alarm).encode())
    (order,) = intake.handle([inbound], created).created
    intake.dispatched([order], created)
    return order


_PLATES = itertools.count(10001)


def _document(order: WorkOrder, action: str, unit: str, **fields: Any) -> dict[str, Any]:
    return {
        "schema": "workorder-command/1",
        "command_id": f"cmd-{uuid.uuid4().hex}",
        "work_order_id": order.id,
        "action": action,
        "actor": {"unit": unit, "officer_ids": ["JS0682-0117", "JS0682-0342"]},
        "at": NOW.isoformat(),
        **fields,
    }


def _signed(document: dict[str, Any], offset: int) -> InboundMessage:
    return message(document, offset, SENDER)
