"""延期审批结果 reaches the unit's receivers on SQLite and PostgreSQL: the command center's
approval (with the new deadline in China time) or rejection, told once per decision to the
receiver routed for extension_decided, through a real HTTP receiver on 127.0.0.1. Commands
are signed and go through the worker's handler."""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta

import pytest
import sqlalchemy as sa

from tests.integration.notify_world import CREATED, World, escalate
from tests.integration.notify_world import world as world  # the fixture
from tests.integration.test_signed_commands import POLICY, SENDERS
from tests.integration.test_workflow_commands import CLOCKS, Sender
from workorder_pipeline.schemas.notifications import AttemptOutcome, NotificationPolicy
from workorder_pipeline.services.commands import CommandHandler
from workorder_pipeline.services.notifications import Sent
from workorder_pipeline.storage.api_store import ApiStore
from workorder_pipeline.storage.database import create_engine
from workorder_pipeline.storage.repository import WorkOrderRepository
from workorder_pipeline.storage.tables import work_order

pytestmark = pytest.mark.integration

ASKED = CREATED + timedelta(hours=2)
DECIDED = CREATED + timedelta(hours=3)


def routed(world: World) -> NotificationPolicy:
    """Only extension decisions, and only to the text robot: escalations and new urgent
    orders go nowhere, so what arrives is the decision."""
    return world.policy(
        route={"routes": [{"match": {"level": ["extension_decided"]}, "receivers": ["wecom-text"]}]}
    )


def asked(world: World) -> tuple[str, Sender]:
    """An order of squad-1 in progress with 1 working day asked for."""
    order_id = escalate(world, CREATED, CREATED)  # dispatched, nothing escalated yet
    repository = WorkOrderRepository(world.engine)
    handler = CommandHandler(
        repository, frozenset(POLICY.units.ids()), POLICY.lifecycle, SENDERS, clocks=CLOCKS
    )
    send = Sender(handler, order_id)
    for action in ("accept", "start"):
        assert send(action, "squad-1", CREATED + timedelta(minutes=10)).outcome == "applied"
    request = send("request_extension", "squad-1", ASKED, note="需调取监控", extension={"working_days": 1})
    assert request.outcome == "applied", request.refusal
    return order_id, send


def texts(world: World) -> list[str]:
    return [r.json()["text"]["content"] for r in world.robots.of("/cgi-bin/webhook/send")]


def test_an_approval_tells_the_unit_once_with_the_new_deadline_in_china_time(world: World) -> None:
    order_id, send = asked(world)
    due_before = WorkOrderRepository(world.engine).get(order_id)
    assert due_before is not None
    assert send("approve_extension", "command-center", DECIDED).outcome == "applied"
    world.clock.now = (DECIDED + timedelta(minutes=1)).astimezone(UTC)
    assert [s.outcome for s in world.run(world.notifier(routed(world)))] == [AttemptOutcome.delivered]
    world.clock.now += timedelta(minutes=5)
    assert world.run(world.notifier(routed(world))) == []  # a restart plans it again: sent once

    moved = WorkOrderRepository(world.engine).get(order_id)
    assert moved is not None and moved.due_at > due_before.due_at
    (text,) = texts(world)
    assert text.startswith(f"【延期审批结果】工单 {order_id}（车辆报警，执法一中队）的延期申请已批准")
    new_due = moved.due_at.astimezone(CREATED.tzinfo).strftime("%Y-%m-%d %H:%M")
    assert f"新的办理期限 {new_due}（北京时间）" in text
    (shown,) = ApiStore(world.engine).notifications(order_id)
    assert (shown["level"], shown["receiver"], shown["status"]) == ("extension_decided", "wecom-text", "sent")


def test_a_rejection_tells_the_unit_once_that_the_deadline_stands(world: World) -> None:
    order_id, send = asked(world)
    assert send("reject_extension", "command-center", DECIDED, note="理由不足").outcome == "applied"
    world.clock.now = (DECIDED + timedelta(minutes=1)).astimezone(UTC)
    world.run(world.notifier(routed(world)))
    world.run(world.notifier(routed(world)))
    (text,) = texts(world)
    assert text.startswith(f"【延期审批结果】工单 {order_id}（车辆报警，执法一中队）的延期申请被驳回")
    assert "办理期限仍为 2026-11-24 08:00（北京时间），剩余 20小时59分钟" in text


def test_two_workers_planning_one_decision_together_send_it_once(world: World, database_url: str) -> None:
    order_id, send = asked(world)
    # A moment with microseconds: the decision is found again by it, to the microsecond.
    decided = DECIDED + timedelta(microseconds=123457)
    assert send("approve_extension", "command-center", decided).outcome == "applied"
    world.clock.now = (decided + timedelta(minutes=1)).astimezone(UTC)
    other = create_engine(database_url)
    first, second = world.notifier(routed(world)), world.notifier(routed(world), other)

    async def both() -> list[list[Sent]]:
        return list(await asyncio.gather(first.run(world.clock), second.run(world.clock)))

    results = asyncio.run(both())
    other.dispose()
    assert sum(len(r) for r in results) == 1
    assert len(texts(world)) == 1 and len(ApiStore(world.engine).notifications(order_id)) == 1
    world.clock.now += timedelta(minutes=5)
    assert world.run(world.notifier(routed(world))) == []  # and a restart after them: still once


def test_a_decision_on_an_order_closed_since_tells_nobody(world: World) -> None:
    order_id, send = asked(world)
    assert send("approve_extension", "command-center", DECIDED).outcome == "applied"
    with world.engine.begin() as conn:  # closed while the notifier was not running
        conn.execute(sa.update(work_order).where(work_order.c.id == order_id).values(status="closed"))
    world.clock.now = (DECIDED + timedelta(minutes=1)).astimezone(UTC)
    assert world.run(world.notifier(routed(world))) == []
    assert world.robots.received == [] and ApiStore(world.engine).notifications(order_id) == []


def test_a_decision_older_than_the_window_is_not_told_late(world: World) -> None:
    order_id, send = asked(world)
    assert send("approve_extension", "command-center", DECIDED).outcome == "applied"
    world.clock.now = (DECIDED + timedelta(hours=24, seconds=1)).astimezone(UTC)
    assert world.run(world.notifier(routed(world))) == []
    assert ApiStore(world.engine).notifications(order_id) == []


def test_no_route_for_extension_decisions_tells_nobody(world: World) -> None:
    _, send = asked(world)
    assert send("approve_extension", "command-center", DECIDED).outcome == "applied"
    world.clock.now = (DECIDED + timedelta(minutes=1)).astimezone(UTC)
    nowhere = world.policy(route={"routes": [{"match": {"level": ["overdue"]}, "receivers": ["hook"]}]})
    assert world.run(world.notifier(nowhere)) == []
    assert world.robots.received == []


def test_a_decision_is_not_repeated_while_the_order_stays_open(world: World) -> None:
    _, send = asked(world)
    assert send("reject_extension", "command-center", DECIDED, note="理由不足").outcome == "applied"
    policy = world.policy(
        repeat_every_minutes=60,
        repeat_at_most=2,
        route={"routes": [{"match": {"level": ["extension_decided"]}, "receivers": ["wecom-text"]}]},
    )
    world.clock.now = (DECIDED + timedelta(minutes=1)).astimezone(UTC)
    for _hour in range(3):
        world.run(world.notifier(policy))
        world.clock.now += timedelta(minutes=61)
    assert len(texts(world)) == 1
