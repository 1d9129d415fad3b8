"""The intake and the command handler over in-memory units of work (tests/fakes.py): what a
batch records, and what a batch done again after a lost race records, without a database.
The storage adapters' own tests run on SQLite and PostgreSQL (tests/integration)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.fakes import InMemoryCommandStore, InMemoryIntakeStore
from tests.unit.test_intake_service import ALL_SAMPLES, NOW, POLICY, REFERENCE, SAMPLES, TOPICS
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.schemas.commands import (
    CommandAction,
    LifecycleEventName,
    OutboxTopic,
    Outcome,
    RefusalCode,
    WorkOrderCommand,
)
from workorder_pipeline.schemas.senders import SenderKeys
from workorder_pipeline.schemas.workorder import PipelineEventName, WorkOrder, WorkOrderStatus
from workorder_pipeline.services.commands import CommandHandler
from workorder_pipeline.services.intake import InboundMessage, Intake, IntakeResult

#: The first sample alarm's time: alarms within 24 h of it on its plate merge into its order.
T = datetime(2026, 11, 19, 0, 12, 36, tzinfo=UTC)
ALARM = json.loads((SAMPLES / "vehicle-alarms.jsonl").read_bytes().splitlines()[0])


def intake_over(store: InMemoryIntakeStore) -> Intake:
    return Intake(compile_policy(POLICY), store, TOPICS.inbound(), reference=lambda: REFERENCE)


def alarm(alarm_id: str, at: datetime, offset: int) -> InboundMessage:
    value = json.dumps({**ALARM, "alarm_id": alarm_id, "occurred_at": at.isoformat()}, ensure_ascii=False)
    return InboundMessage(TOPICS.vehicle_alarms, 0, offset, None, value.encode())


def counts(result: IntakeResult) -> dict[str, Any]:
    return {
        "received": result.received,
        "rejected": result.rejected,
        "created": result.created,
        "merged": result.merged,
        "suppressed": result.suppressed,
        "redelivered": result.redelivered,
        "late": result.late,
        "to_dispatch": result.to_dispatch,
        "dead_letters": result.dead_letters,
    }


# --- intake -------------------------------------------------------------------------------


def test_a_batch_done_again_after_a_lost_race_counts_each_message_once() -> None:
    calm, raced = InMemoryIntakeStore(), InMemoryIntakeStore(races=1)

    expected = intake_over(calm).handle(ALL_SAMPLES, NOW)
    result = intake_over(raced).handle(ALL_SAMPLES, NOW)

    assert expected.created and sum(expected.suppressed.values()) and expected.dead_letters
    assert counts(result) == counts(expected)
    assert raced.commits == 1
    assert (raced.orders, raced.history, raced.suppressed) == (calm.orders, calm.history, calm.suppressed)


def test_a_batch_that_loses_the_race_twice_gives_up_with_the_second_loss_and_writes_nothing() -> None:
    store = InMemoryIntakeStore(races=2)

    with pytest.raises(RuntimeError, match="another worker committed first"):
        intake_over(store).handle(ALL_SAMPLES, NOW)

    assert (store.orders, store.history, store.sources, store.commits) == ({}, [], {}, 0)


def test_a_batch_delivered_again_makes_no_second_order_and_counts_as_redelivered() -> None:
    store = InMemoryIntakeStore()
    first = intake_over(store).handle(ALL_SAMPLES, NOW)
    orders = dict(store.orders)

    again = intake_over(store).handle(ALL_SAMPLES, NOW)

    assert again.created == [] and sum(again.merged.values()) == 0
    assert sum(again.redelivered.values()) == sum(first.received.values())
    assert store.orders == orders


def test_an_alarm_merged_into_the_order_its_batch_opened_counts_in_the_order_published() -> None:
    store = InMemoryIntakeStore()

    result = intake_over(store).handle([alarm("A-1", T, 0), alarm("A-2", T + timedelta(hours=2), 1)], NOW)

    [order] = result.created
    assert (order.occurrences, order.first_seen_at, order.last_seen_at) == (2, T, T + timedelta(hours=2))
    assert result.to_dispatch == [order] and store.orders[order.id] == order
    assert [(event, source) for _, event, source in _history(store)] == [
        (PipelineEventName.registered, "js-key-vehicles/A-1"),
        (PipelineEventName.merged, "js-key-vehicles/A-2"),
    ]


def test_an_alarm_merged_into_an_order_of_an_earlier_batch_adds_to_its_occurrences() -> None:
    store = InMemoryIntakeStore()
    [order] = intake_over(store).handle([alarm("A-1", T, 0)], NOW).created

    later = intake_over(store).handle([alarm("A-0", T - timedelta(hours=1), 1)], NOW)

    assert later.created == [] and sum(later.merged.values()) == 1
    stored = store.orders[order.id]
    assert (stored.occurrences, stored.first_seen_at, stored.last_seen_at) == (2, T - timedelta(hours=1), T)


def _history(store: InMemoryIntakeStore) -> list[tuple[str, str, str]]:
    return [(order_id, event, detail["source_id"]) for order_id, event, detail in store.history]


# --- commands -----------------------------------------------------------------------------


def dispatched_order() -> WorkOrder:
    [order] = intake_over(InMemoryIntakeStore()).handle([alarm("A-1", T, 0)], NOW).created
    return order.model_copy(update={"status": WorkOrderStatus.dispatched})


def accept(order: WorkOrder, unit: str | None = None, command_id: str = "cmd-1") -> WorkOrderCommand:
    return WorkOrderCommand.model_validate(
        {
            "schema": "workorder-command/1",
            "command_id": command_id,
            "work_order_id": order.id,
            "action": CommandAction.accept.value,
            "actor": {"unit": unit or order.unit, "officer_ids": ["officer-1", "officer-2"]},
            "at": (NOW + timedelta(minutes=5)).isoformat(),
        }
    )


def handler_over(store: InMemoryCommandStore) -> CommandHandler:
    return CommandHandler(store, frozenset(POLICY.units.ids()), POLICY.lifecycle, SenderKeys())


def test_a_command_batch_done_again_after_a_lost_race_applies_each_command_once() -> None:
    store = InMemoryCommandStore(races=1)
    order = store.add(dispatched_order())

    [outcome] = handler_over(store).execute([accept(order)], NOW + timedelta(minutes=6))

    assert outcome.outcome is Outcome.applied
    assert outcome.order is not None and outcome.order.status is WorkOrderStatus.accepted
    assert [(order_id, event) for order_id, event, _, _ in store.history] == [
        (order.id, LifecycleEventName.accepted)
    ]
    assert [row["topic"] for row in store.unpublished_outbox()] == [OutboxTopic.lifecycle]
    assert store.processed == {"cmd-1": (order.id, Outcome.applied.value, LifecycleEventName.accepted)}


def test_a_command_sent_again_has_no_second_effect() -> None:
    store = InMemoryCommandStore()
    order = store.add(dispatched_order())
    handler = handler_over(store)
    handler.execute([accept(order)], NOW + timedelta(minutes=6))

    [again] = handler.execute([accept(order)], NOW + timedelta(minutes=7))

    assert again.outcome is Outcome.duplicate and again.event is None
    assert len(store.history) == 1 and len(store.outbox) == 1


def test_a_command_refused_is_in_the_orders_history_and_announced_but_changes_nothing() -> None:
    store = InMemoryCommandStore()
    order = store.add(dispatched_order())
    other_unit = next(unit for unit in sorted(POLICY.units.ids()) if unit != order.unit)

    [outcome] = handler_over(store).execute([accept(order, other_unit)], NOW + timedelta(minutes=6))

    assert outcome.outcome is Outcome.rejected and outcome.refusal is not None
    assert outcome.refusal.code is RefusalCode.forbidden
    assert store.order(order.id) == order
    [(_, event, actor, detail)] = store.history
    assert (event, actor, detail["code"]) == (LifecycleEventName.command_rejected, other_unit, "forbidden")
    [announced] = store.unpublished_outbox()
    assert json.loads(announced["payload"])["event"] == LifecycleEventName.command_rejected
    assert store.processed["cmd-1"][1] == RefusalCode.forbidden.value


def _command(order: WorkOrder, action: str, unit: str, n: int, **fields: Any) -> WorkOrderCommand:
    document = {
        "schema": "workorder-command/1",
        "command_id": f"cmd-{n}",
        "work_order_id": order.id,
        "action": action,
        "actor": {"unit": unit, "officer_ids": ["officer-1", "officer-2"]},
        "at": (NOW + timedelta(minutes=5 + n)).isoformat(),
        **fields,
    }
    return WorkOrderCommand.model_validate(document)


def test_the_rework_escalation_of_a_batch_done_again_after_a_lost_race_is_recorded_once() -> None:
    """The escalation is part of the command's unit of work: the lost attempt's is rolled
    back with it, the second attempt records it once."""
    store = InMemoryCommandStore(races=1)
    order = store.add(dispatched_order())
    commands = [_command(order, "accept", order.unit, 1), _command(order, "start", order.unit, 2)]
    for n in range(3, 9, 2):
        commands.append(_command(order, "feedback", order.unit, n, disposition="unfounded"))
        commands.append(_command(order, "reopen", "command-center", n + 1, note="redo"))

    outcomes = handler_over(store).execute(commands, NOW + timedelta(minutes=20))

    assert [o.outcome for o in outcomes] == [Outcome.applied] * 8
    assert [(order_id, level, unit) for order_id, level, unit, _ in store.escalations] == [
        (order.id, "rework_escalated", order.unit)
    ]
