"""One open order per dedupe key, enforced by the database (storage/dedupe_slots.py).

On real SQLite and PostgreSQL: the slot index refuses a second holder of a key, closing an
order frees its slot, a worker that decided from a view another worker's commit made stale
merges into the winner's order, and two intake services racing the same keys (through
streams.retry.settle, as the consumer runs them) end with one order per key and every
signal accounted for.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from tests.integration.pipeline_support import REPO_ROOT, SAMPLES, file_lines
from workorder_pipeline.config.settings import Topics
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.schemas.commands import LifecycleEventName
from workorder_pipeline.schemas.deadletter import DeadLetter, KeptOriginal
from workorder_pipeline.schemas.workorder import WorkOrder, WorkOrderStatus
from workorder_pipeline.services.failures import WaitingFor, transient
from workorder_pipeline.services.intake import InboundMessage, Intake, IntakeResult, combined
from workorder_pipeline.services.policy_files import load_policy, load_reference
from workorder_pipeline.storage.database import MIGRATIONS, create_engine
from workorder_pipeline.storage.dedupe_slots import DedupeSlotTaken, slot_taken
from workorder_pipeline.storage.intake_uow import IntakeBatch
from workorder_pipeline.storage.repository import WorkOrderRepository
from workorder_pipeline.storage.tables import work_order, work_order_source
from workorder_pipeline.streams.resilience import Task
from workorder_pipeline.streams.retry import settle

pytestmark = pytest.mark.integration

TOPICS = Topics()
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
#: Alarms of the samples' time: the dedupe window (24 h for alarms) counts from here.
T = datetime(2026, 11, 19, 0, 12, 36, tzinfo=UTC)
ALARM = json.loads(file_lines(SAMPLES / "vehicle-alarms.jsonl")[0])
CHECKIN = json.loads(file_lines(SAMPLES / "checkin-failures.jsonl")[0])
REFERENCE = load_reference(REPO_ROOT / "policy")
POLICY = load_policy(REPO_ROOT / "policy")


def make_intake(store: Any) -> Intake:
    return Intake(
        compile_policy(POLICY),
        store,
        TOPICS.inbound(),
        reference=lambda: REFERENCE,
        max_event_lead=timedelta(days=3650),
        max_event_age=timedelta(days=36500),
    )


def alarm(alarm_id: str, plate: str, at: datetime = T, partition: int = 0, offset: int = 0) -> InboundMessage:
    """The first sample alarm (a 12 % overspeed: it makes an order) under another id, plate and time."""
    event = {**ALARM, "alarm_id": alarm_id, "plate": plate, "occurred_at": at.isoformat()}
    value = json.dumps(event, ensure_ascii=False).encode()
    return InboundMessage(TOPICS.vehicle_alarms, partition, offset, alarm_id.encode(), value)


def checkin(check_id: str, partition: int = 0, offset: int = 0) -> InboundMessage:
    """The first sample check-in failure (an enterprise's key) under another id."""
    value = json.dumps({**CHECKIN, "check_id": check_id}, ensure_ascii=False).encode()
    return InboundMessage(TOPICS.checkin_failures, partition, offset, check_id.encode(), value)


def orders(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        query = sa.select(work_order).order_by(work_order.c.created_at, work_order.c.id)
        return [dict(row) for row in conn.execute(query).mappings()]


def copy_of(order: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**order, "id": f"{order['id']}-copy", **changes}


def close(repository: WorkOrderRepository, order_id: str, now: datetime = NOW) -> None:
    """Close the order through the repository's command path (every close goes through it)."""
    order = repository.get(order_id)
    assert order is not None

    changes = {"status": WorkOrderStatus.closed, "closed_at": now, "disposition": "handled"}
    with repository.command_batch(now) as batch:
        batch.apply(order_id, order.status, changes, LifecycleEventName.closed, "test", {})


class Interleaved:
    """The repository, with another worker's batch committed after this batch's triage and
    before its writes (``interlopers``: one per attempt, in order)."""

    def __init__(self, repository: WorkOrderRepository, interlopers: list[Callable[[], object]]) -> None:
        self._repository = repository
        self._interlopers = interlopers

    @contextmanager
    def intake_batch(self, now: datetime) -> Iterator[IntakeBatch]:
        with self._repository.intake_batch(now) as batch:
            yield batch
            if self._interlopers:
                self._interlopers.pop(0)()

    def keep_originals(self, originals: Sequence[KeptOriginal]) -> None:
        self._repository.keep_originals(originals)

    def log_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        self._repository.log_dead_letters(letters)

    def mark_dispatched(self, orders: Sequence[WorkOrder], now: datetime) -> None:
        self._repository.mark_dispatched(orders, now)

    def undispatched(self, limit: int = 1000) -> list[WorkOrder]:
        return self._repository.undispatched(limit)


# --- the index ----------------------------------------------------------------------


def test_a_second_order_cannot_hold_the_dedupe_key_its_open_order_holds(engine: Engine) -> None:
    make_intake(WorkOrderRepository(engine)).handle([alarm("A-1", "苏FD0001")], NOW)
    [held] = orders(engine)
    assert held["dedupe_slot"] == held["dedupe_key"] is not None

    with pytest.raises(IntegrityError) as refused, engine.begin() as conn:
        conn.execute(work_order.insert(), copy_of(held))
    with pytest.raises(IntegrityError) as same_id, engine.begin() as conn:
        conn.execute(work_order.insert(), copy_of(held, id=held["id"], dedupe_slot=None))
    with engine.begin() as conn:  # an open order without the slot (superseded) is allowed
        conn.execute(work_order.insert(), copy_of(held, dedupe_slot=None))

    assert slot_taken(refused.value)
    assert not slot_taken(same_id.value), "another unique violation is not a dedupe conflict"
    assert [order["dedupe_slot"] for order in orders(engine)] == [held["dedupe_key"], None]


def test_closing_an_order_frees_its_slot_and_the_next_signal_opens_a_new_order(engine: Engine) -> None:
    repository = WorkOrderRepository(engine)
    intake = make_intake(repository)
    intake.handle([alarm("A-1", "苏FD0002")], NOW)
    [first] = orders(engine)

    close(repository, first["id"])
    after_close = orders(engine)
    with engine.begin() as conn:  # the slot is free: another order may hold the key
        conn.execute(work_order.insert(), copy_of(first, status="registered"))
        conn.execute(work_order.delete().where(work_order.c.id == f"{first['id']}-copy"))
    result = intake.handle([alarm("A-2", "苏FD0002", T + timedelta(minutes=5))], NOW)

    assert after_close[0]["status"] == "closed" and after_close[0]["dedupe_slot"] is None
    assert len(result.created) == 1 and not result.merged
    slots = {order["id"]: order["dedupe_slot"] for order in orders(engine)}
    assert slots == {first["id"]: None, result.created[0].id: first["dedupe_key"]}


def test_after_its_window_a_new_order_takes_the_slot_and_absorbs_what_follows(engine: Engine) -> None:
    intake = make_intake(WorkOrderRepository(engine))
    first = intake.handle([alarm("A-1", "苏FD0003")], NOW).created[0]
    later = T + timedelta(hours=25)
    second = intake.handle([alarm("A-2", "苏FD0003", later)], NOW).created[0]
    third = intake.handle([alarm("A-3", "苏FD0003", later + timedelta(hours=1))], NOW)

    assert sum(third.merged.values()) == 1 and not third.created
    stored = {
        order["id"]: (order["status"], order["dedupe_slot"], order["occurrences"]) for order in orders(engine)
    }
    assert stored == {first.id: ("registered", None, 1), second.id: ("registered", first.dedupe_key, 2)}


def test_orders_superseded_within_one_batch_leave_the_slot_to_the_last(engine: Engine) -> None:
    messages = [alarm(f"A-{n}", "苏FD0004", T + timedelta(hours=25 * n), offset=n) for n in range(3)]
    result = make_intake(WorkOrderRepository(engine)).handle(messages, NOW)

    assert len(result.created) == 3
    assert [order["dedupe_slot"] is not None for order in orders(engine)] == [False, False, True]


# --- races ----------------------------------------------------------------------------


def test_a_worker_that_decided_from_a_stale_view_merges_into_the_winners_order(
    database_url: str, engine: Engine
) -> None:
    other = create_engine(database_url)
    try:
        winner = make_intake(WorkOrderRepository(other))
        interloper: list[Callable[[], object]] = [
            lambda: winner.handle([alarm("W-1", "苏FD0005", partition=1)], NOW)
        ]
        loser = make_intake(Interleaved(WorkOrderRepository(engine), interloper))

        result = loser.handle([alarm("L-1", "苏FD0005", T + timedelta(minutes=1))], NOW)
    finally:
        other.dispose()

    assert not result.created and sum(result.merged.values()) == 1
    [order] = orders(engine)
    assert order["occurrences"] == 2 and order["dedupe_slot"] == order["dedupe_key"]


def test_losing_the_race_twice_is_a_conflict_retried_not_a_failure_of_the_messages(
    database_url: str, engine: Engine
) -> None:
    """Attempt 1 sees no order, attempt 2 sees one outside its window: each time another
    worker opens the key's order before this one writes. The third attempt merges."""
    other = create_engine(database_url)
    try:
        winner = make_intake(WorkOrderRepository(other))
        interlopers: list[Callable[[], object]] = [
            lambda: winner.handle([alarm("W-1", "苏FD0006")], NOW),
            lambda: winner.handle([alarm("W-2", "苏FD0006", T + timedelta(hours=47))], NOW),
        ]
        loser = make_intake(Interleaved(WorkOrderRepository(engine), interlopers))
        mine = [alarm("L-1", "苏FD0006", T + timedelta(hours=48))]

        with pytest.raises(DedupeSlotTaken) as conflict:
            loser.handle(mine, NOW)
        result = loser.handle(mine, NOW)  # what until_done does after its backoff
    finally:
        other.dispose()

    assert transient(conflict.value) is WaitingFor.conflict
    assert not result.created and sum(result.merged.values()) == 1
    stored = [(order["occurrences"], order["dedupe_slot"] is not None) for order in orders(engine)]
    assert stored == [(1, False), (2, True)]


def _race_round(url: str, batches: list[list[InboundMessage]]) -> list[IntakeResult]:
    """Each batch handled by its own intake service (own engine), all at once, through
    streams.retry.settle as the intake consumer runs them; nothing may be given up."""
    engines = [create_engine(url) for _ in batches]
    given_up: list[str] = []

    async def worker(intake: Intake, batch: list[InboundMessage]) -> IntakeResult:
        async def process(part: Sequence[InboundMessage]) -> IntakeResult:
            return await asyncio.to_thread(intake.handle, part, NOW)

        async def give_up(message: InboundMessage, error: BaseException) -> IntakeResult:
            given_up.append(f"{message.key!r}: {type(error).__name__}")
            return IntakeResult()

        return combined(await settle(Task.intake, process, batch, give_up))

    async def race() -> list[IntakeResult]:
        intakes = [make_intake(WorkOrderRepository(e)) for e in engines]
        return list(await asyncio.gather(*(worker(i, b) for i, b in zip(intakes, batches, strict=True))))

    try:
        results = asyncio.run(asyncio.wait_for(race(), 120))
    finally:
        for e in engines:
            e.dispose()
    assert given_up == []
    return results


def test_two_intake_services_racing_the_same_keys_open_one_order_per_key(
    database_url: str, engine: Engine
) -> None:
    plates = [f"苏FR{n:04d}" for n in range(40)]
    rounds, inputs = 4, 0
    results: list[IntakeResult] = []
    for r in range(rounds):
        # Same vehicles and enterprise, other publisher ids: as if on different partitions.
        # The second worker takes the keys in the other order (they lock in another order).
        at = T + timedelta(minutes=r)
        first = [alarm(f"A-{r}-{n}", p, at, partition=0, offset=n) for n, p in enumerate(plates)]
        second = [alarm(f"B-{r}-{n}", p, at, partition=1, offset=n) for n, p in enumerate(plates)]
        first.append(checkin(f"CA-{r}", partition=0, offset=len(plates)))
        second.append(checkin(f"CB-{r}", partition=1, offset=len(plates)))
        results += _race_round(database_url, [first, second[::-1]])
        inputs += len(first) + len(second)

    stored = orders(engine)
    by_key = Counter(order["dedupe_key"] for order in stored)
    decided = sum(len(r.created) + sum(r.merged.values()) + sum(r.suppressed.values()) for r in results)
    with engine.connect() as conn:
        sources = conn.execute(sa.select(sa.func.count()).select_from(work_order_source)).scalar_one()
    assert decided == inputs and sum(sum(r.redelivered.values()) for r in results) == 0
    assert set(by_key.values()) == {1} and len(by_key) == len(plates) + 1, by_key
    assert sum(order["occurrences"] for order in stored) == sources == inputs
    assert all(order["dedupe_slot"] == order["dedupe_key"] for order in stored)


# --- migration -----------------------------------------------------------------------


def test_migration_gives_each_keys_most_recently_seen_open_order_the_slot(database_url: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(database_url)
    rows = [  # id, dedupe key, status, last seen (hours after T)
        ("WO-1", "k1", "dispatched", 1),
        ("WO-2", "k1", "in_progress", 30),  # k1's most recently seen open order
        ("WO-3", "k1", "closed", 40),
        ("WO-4", "k2", "closed", 2),
        ("WO-5", "k3", "returned", 3),
        ("WO-6", None, "dispatched", 4),
    ]
    try:
        with engine.connect() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0010")
            for order_id, key, status, hours in rows:
                at = (T + timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S")
                conn.execute(
                    sa.text(
                        "INSERT INTO work_order (id, kind, status, unit, priority, route_key, created_at,"
                        " updated_at, due_at, summary, occurrences, first_seen_at, last_seen_at, dedupe_key)"
                        " VALUES (:id, 'vehicle_alarm', :status, 'squad-1', 'P3', 'default', :at, :at,"
                        " :at, 'summary', 1, :at, :at, :key)"
                    ),
                    {"id": order_id, "status": status, "at": at, "key": key},
                )
            conn.commit()
            command.upgrade(config, "0011")
            slots: dict[str, str | None] = dict(
                conn.execute(sa.text("SELECT id, dedupe_slot FROM work_order")).all()
            )
            command.downgrade(config, "0010")
            columns = {c["name"] for c in sa.inspect(conn).get_columns("work_order")}
    finally:
        engine.dispose()

    assert slots == {"WO-1": None, "WO-2": "k1", "WO-3": None, "WO-4": None, "WO-5": "k3", "WO-6": None}
    assert "dedupe_slot" not in columns
