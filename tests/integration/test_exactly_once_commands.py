"""Exactly once for commands: what a re-delivered command publishes, without a second effect.

In exactly-once mode a command batch's announcements (lifecycle events, re-dispatched
orders) are stored with each command's position and published in one Kafka transaction
with the command offsets. A command that comes again from a position the outbox holds is
one whose transaction never committed to Kafka: the very same announcements must go out
again, and the command must not be handled again. A re-send from another position
publishes nothing. Real databases, both of them; the broker side is tests/crash.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.test_signed_commands import (
    POLICY,
    SENDER,
    SENDERS,
    STRANGER,
    accept,
    dispatched_order,
    message,
)
from workorder_pipeline.config.settings import ProcessingGuarantee
from workorder_pipeline.schemas.workorder import COMMAND_CENTER
from workorder_pipeline.services.commands import CommandHandler
from workorder_pipeline.services.ports import OutboxTopic
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.repository import WorkOrderRepository
from workorder_pipeline.storage.tables import work_order_event

pytestmark = pytest.mark.integration

UNITS = frozenset(POLICY.units.ids())


@pytest.fixture
def repository(database_url: str) -> Iterator[WorkOrderRepository]:
    migrate(database_url)
    engine = create_engine(database_url)
    try:
        yield WorkOrderRepository(engine)
    finally:
        engine.dispose()


def handler(repository: WorkOrderRepository, guarantee: ProcessingGuarantee) -> CommandHandler:
    return CommandHandler(repository, UNITS, POLICY.lifecycle, SENDERS, guarantee)


def reassign(order_id: str, to_unit: str, now: datetime) -> dict[str, Any]:
    return {
        **accept(order_id, COMMAND_CENTER, now),
        "action": "reassign",
        "to_unit": to_unit,
        "command_id": f"cmd-{uuid.uuid4().hex}",
    }


def audit_events(repository: WorkOrderRepository, command_id: str) -> int:
    with repository.engine.connect() as conn:
        details = conn.execute(sa.select(work_order_event.c.detail)).scalars()
        return sum(
            1
            for d in details
            if (d if isinstance(d, dict) else json.loads(d)).get("command_id") == command_id
        )


def test_a_redelivered_command_publishes_its_announcements_again_and_is_not_applied_again(
    repository: WorkOrderRepository,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    order = dispatched_order(repository, now)
    to_unit = next(u for u in sorted(UNITS) if u.startswith("squad-") and u != order.unit)
    commands = handler(repository, ProcessingGuarantee.exactly_once)
    command = reassign(order.id, to_unit, now)
    first = commands.handle([message(command, 7, SENDER)], now)

    assert [o.outcome for o in first.outcomes] == ["applied"]
    topics = [topic for topic, _, _ in first.announcements]
    assert topics == [OutboxTopic.lifecycle, OutboxTopic.dispatched]
    (_, key, payload) = first.announcements[1]
    assert (key, json.loads(payload)["squad"]) == (to_unit, to_unit)
    # Published in the command's Kafka transaction: nothing is left for the relay.
    assert commands.outbox() == []

    redelivered = commands.handle([message(command, 7, SENDER)], now)
    assert [o.outcome for o in redelivered.outcomes] == ["duplicate"]
    assert redelivered.announcements == first.announcements
    assert audit_events(repository, command["command_id"]) == 1

    resent = commands.handle([message(command, 8, SENDER)], now)
    assert [o.outcome for o in resent.outcomes] == ["duplicate"]
    assert resent.announcements == []
    stored = repository.get(order.id)
    assert stored is not None and stored.unit == to_unit


def test_a_redelivered_forged_command_is_announced_again_not_audited_again(
    repository: WorkOrderRepository,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    order = dispatched_order(repository, now)
    commands = handler(repository, ProcessingGuarantee.exactly_once)
    forged = accept(order.id, order.unit, now)
    first = commands.handle([message(forged, 3, STRANGER)], now)
    again = commands.handle([message(forged, 3, STRANGER)], now)

    assert [o.outcome for o in first.outcomes] == ["rejected"]
    assert len(first.announcements) == 1 and again.announcements == first.announcements
    assert audit_events(repository, forged["command_id"]) == 1
    # Its command_id stays free: the genuine command, from its own position, is applied.
    genuine = commands.handle([message(forged, 4, SENDER)], now)
    assert [o.outcome for o in genuine.outcomes] == ["applied"]


def test_a_batch_of_redelivered_and_new_commands_announces_in_command_order(
    repository: WorkOrderRepository,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    order = dispatched_order(repository, now)
    commands = handler(repository, ProcessingGuarantee.exactly_once)
    first, second = (
        accept(order.id, order.unit, now),
        {**accept(order.id, order.unit, now), "action": "start"},
    )
    done = commands.handle([message(first, 0, SENDER)], now)
    both = commands.handle([message(first, 0, SENDER), message(second, 1, SENDER)], now)

    assert [o.outcome for o in both.outcomes] == ["duplicate", "applied"]
    ids = [json.loads(payload)["command_id"] for _, _, payload in both.announcements]
    assert ids == [first["command_id"], second["command_id"]]
    assert both.announcements[0] == done.announcements[0]


def test_an_unprocessable_command_redelivered_after_it_was_handled_records_nothing_more(
    repository: WorkOrderRepository,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    order = dispatched_order(repository, now)
    commands = handler(repository, ProcessingGuarantee.exactly_once)
    command = accept(order.id, order.unit, now)
    commands.handle([message(command, 5, SENDER)], now)

    set_aside = commands.unprocessable(message(command, 5, SENDER), "MessageSizeTooLargeError", now)

    assert len(set_aside.dead_letters) == 1 and set_aside.announcements == []
    assert (repository.command_outcome(command["command_id"]) or {}).get("outcome") == "applied"
    fresh = accept(order.id, order.unit, now)
    refused = commands.unprocessable(message(fresh, 6, SENDER), "DataError", now)
    assert [json.loads(p)["detail"]["code"] for _, _, p in refused.announcements] == ["unprocessable"]


def test_at_least_once_leaves_announcements_to_the_relay_unchanged(repository: WorkOrderRepository) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    order = dispatched_order(repository, now)
    commands = handler(repository, ProcessingGuarantee.at_least_once)
    command = accept(order.id, order.unit, now)
    first = commands.handle([message(command, 2, SENDER)], now)
    again = commands.handle([message(command, 2, SENDER)], now)

    assert first.announcements == [] and again.announcements == []
    assert [row["position"] for row in commands.outbox()] == [None]
    assert [o.outcome for o in again.outcomes] == ["duplicate"]
