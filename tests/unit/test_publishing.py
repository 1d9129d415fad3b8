"""The worker's publishing besides its batches (services/publishing), on in-memory ports:
the outbox goes out in the order written and is marked published; a row the broker refuses
for good is set aside and the rows after it go out; escalations are marked only once the
broker has them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from workorder_pipeline.schemas.commands import EscalationMessage
from workorder_pipeline.schemas.workorder import WorkOrder
from workorder_pipeline.services.ports import OutboxTopic
from workorder_pipeline.services.publishing import OutboxRelay, OutboxRow, publish_escalations

NOW = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
TOPICS = {OutboxTopic.lifecycle: "workorders.lifecycle", OutboxTopic.dispatched: "workorders.dispatched"}


class RefusedForGood(Exception):
    pass


class Broker:
    """What reached the topics; a key in ``refuse`` is refused for good."""

    def __init__(self, refuse: frozenset[bytes] = frozenset()) -> None:
        self.received: list[tuple[str, bytes | None, bytes]] = []
        self._refuse = refuse

    async def send(self, topic: str, key: bytes | None, value: bytes) -> Awaitable[Any]:
        if key in self._refuse:
            raise RefusedForGood(key)
        self.received.append((topic, key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def publish(self, orders: Iterable[WorkOrder]) -> None:
        raise AssertionError("not expected here")


class Outbox:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.marked: list[int] = []

    def outbox(self) -> list[Any]:
        return [row for row in self.rows if row["id"] not in self.marked]

    def published(self, ids: Sequence[int], now: datetime) -> None:
        self.marked += ids


async def split_until_alone(
    process: Callable[[Sequence[OutboxRow]], Awaitable[None]],
    rows: Sequence[OutboxRow],
    give_up: Callable[[OutboxRow, BaseException], Awaitable[None]],
) -> object:
    """streams/retry.settle's contract without its waiting: failing parts are halved."""
    try:
        await process(rows)
    except RefusedForGood as exc:
        if len(rows) == 1:
            await give_up(rows[0], exc)
        else:
            middle = len(rows) // 2
            await split_until_alone(process, rows[:middle], give_up)
            await split_until_alone(process, rows[middle:], give_up)
    return None


def row(id_: int, topic: OutboxTopic, key: str) -> dict[str, Any]:
    return {"id": id_, "topic": topic.value, "key": key, "payload": f'{{"n": {id_}}}'}


def test_the_outbox_goes_out_in_the_order_written_to_each_rows_topic() -> None:
    outbox = Outbox([row(1, OutboxTopic.lifecycle, "wo-1"), row(2, OutboxTopic.dispatched, "wo-1")])
    broker = Broker()
    relay = OutboxRelay(outbox, broker, TOPICS, lambda: NOW, split_until_alone)
    asyncio.run(relay.publish())
    assert broker.received == [
        ("workorders.lifecycle", b"wo-1", b'{"n": 1}'),
        ("workorders.dispatched", b"wo-1", b'{"n": 2}'),
    ]
    assert outbox.marked == [1, 2]


def test_a_row_refused_for_good_is_set_aside_and_the_rows_after_it_go_out() -> None:
    outbox = Outbox([row(i, OutboxTopic.lifecycle, f"wo-{i}") for i in range(1, 5)])
    broker = Broker(refuse=frozenset({b"wo-2"}))
    relay = OutboxRelay(outbox, broker, TOPICS, lambda: NOW, split_until_alone)
    asyncio.run(relay.publish())
    assert [key for _, key, _ in broker.received if key != b"wo-1"] == [b"wo-3", b"wo-4"]
    assert sorted(outbox.marked) == [1, 2, 3, 4]  # the refused one too: never tried again


class EscalationStore:
    def __init__(self, messages: list[EscalationMessage]) -> None:
        self.messages = messages
        self.marked: list[int] = []

    def fire(self, now: datetime) -> int:
        return len(self.messages)

    def pending(self) -> list[EscalationMessage]:
        return [m for m in self.messages if m.escalation_id not in self.marked]

    def published(self, messages: list[EscalationMessage], now: datetime) -> None:
        self.marked += [m.escalation_id for m in messages]


def escalation(id_: int) -> EscalationMessage:
    return EscalationMessage(
        escalation_id=id_,
        work_order_id=f"wo-{id_}",
        level="overdue",
        recipient="command-center",
        unit="squad-1",
        kind="vehicle_alarm",
        priority="P1",
        due_at=NOW,
        fired_at=NOW,
        overdue_seconds=0,
    )


def test_escalations_go_to_their_recipient_and_are_marked_once_published() -> None:
    store = EscalationStore([escalation(1), escalation(2)])
    broker = Broker()
    published = asyncio.run(publish_escalations(store, broker, "workorders.escalations", lambda: NOW))
    assert [m.escalation_id for m in published] == [1, 2]
    assert [(topic, key) for topic, key, _ in broker.received] == [
        ("workorders.escalations", b"command-center")
    ] * 2
    assert store.marked == [1, 2]
    assert asyncio.run(publish_escalations(store, broker, "workorders.escalations", lambda: NOW)) == []


def test_escalations_the_broker_refuses_stay_unmarked_for_the_next_check() -> None:
    store = EscalationStore([escalation(1)])
    with pytest.raises(RefusedForGood):
        asyncio.run(
            publish_escalations(store, Broker(refuse=frozenset({b"command-center"})), "t", lambda: NOW)
        )
    assert store.marked == []
