"""In-memory implementations of the ports (services.ports), for tests that need no database
and no broker. The storage and Kafka adapters keep their own tests on the real things."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from workorder_pipeline.processors.merging import with_occurrences
from workorder_pipeline.schemas.commands import (
    EscalationLevel,
    LifecycleEventName,
    OutboxTopic,
    WorkOrderCommand,
)
from workorder_pipeline.schemas.deadletter import DeadLetter, KeptOriginal
from workorder_pipeline.schemas.figures import OrderFacts
from workorder_pipeline.schemas.records import (
    DecidedCommand,
    ExtensionRequestQuery,
    OrderPage,
    OrderQuery,
    PendingExtension,
    PersonalDataRead,
)
from workorder_pipeline.schemas.signal import SourceKey
from workorder_pipeline.schemas.workorder import Occurrences, PipelineEventName, WorkOrder, WorkOrderStatus
from workorder_pipeline.services.ports import Announcement, CommandNotPublished
from workorder_pipeline.storage.transaction import LostRace

_CLOSED = {WorkOrderStatus.closed}


@dataclass
class InMemoryApiStore:
    """services.ports.ApiStore over dicts."""

    orders_by_id: dict[str, WorkOrder] = field(default_factory=dict)
    histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    complainants: dict[str, dict[str, Any]] = field(default_factory=dict)
    read_log: list[PersonalDataRead] = field(default_factory=list)
    verdicts: dict[str, DecidedCommand] = field(default_factory=dict)
    sent: dict[str, str] = field(default_factory=dict)
    originals: dict[str, KeptOriginal] = field(default_factory=dict)

    def add(self, order: WorkOrder, complainant: dict[str, Any] | None = None) -> WorkOrder:
        self.orders_by_id[order.id] = order
        if complainant is not None:
            self.complainants[order.id] = complainant
        return order

    def order(self, order_id: str) -> WorkOrder | None:
        return self.orders_by_id.get(order_id)

    def orders(self, query: OrderQuery, now: datetime) -> OrderPage:
        found = [o for o in self.orders_by_id.values() if _matches(o, query, now)]
        found.sort(key=lambda o: (o.created_at, o.id), reverse=True)
        return OrderPage(found[query.offset : query.offset + query.limit], len(found))

    def history(self, order_id: str) -> list[dict[str, Any]]:
        return list(self.histories.get(order_id, []))

    def pending_extensions(self, query: ExtensionRequestQuery) -> list[PendingExtension]:
        found = [
            _pending(order, self.histories.get(order.id, []))
            for order in self.orders_by_id.values()
            if order.extension_requested_at is not None
            and order.status not in _CLOSED
            and (query.unit is None or order.unit == query.unit)
            and (query.kind is None or order.kind is query.kind)
        ]
        found.sort(key=lambda p: (p.due_at, p.work_order_id))
        return found[query.offset : query.offset + query.limit]

    def notifications(self, order_id: str) -> list[dict[str, Any]]:
        return []

    def complainant(self, order_id: str) -> dict[str, Any]:
        return dict(self.complainants.get(order_id, {}))

    def sources(self, order_id: str) -> list[dict[str, Any]]:
        return []

    def dead_letter_original(self, original_id: str) -> KeptOriginal | None:
        return self.originals.get(original_id)

    def record_read(self, read: PersonalDataRead) -> None:
        self.read_log.append(read)

    def reads(
        self, *, work_order_id: str | None, since: datetime | None, until: datetime | None, limit: int
    ) -> list[PersonalDataRead]:
        found = [
            r
            for r in reversed(self.read_log)
            if (work_order_id is None or r.work_order_id == work_order_id)
            and (since is None or r.at >= since)
            and (until is None or r.at < until)
        ]
        return found[:limit]

    def decided(self, command_id: str) -> DecidedCommand | None:
        return self.verdicts.get(command_id)

    def record_sent(self, command_id: str, work_order_id: str, at: datetime) -> None:
        self.sent.setdefault(command_id, work_order_id)

    def sent_about(self, command_id: str) -> str | None:
        return self.sent.get(command_id)

    def order_facts(self, start: datetime, end: datetime) -> list[OrderFacts]:
        """The orders' own fields only: these fakes keep no history of returns or callbacks."""
        return [
            OrderFacts(
                id=o.id,
                unit=o.unit,
                kind=o.kind,
                priority=o.priority,
                status=o.status,
                created_at=o.created_at,
                accept_due_at=o.accept_due_at,
                accepted_at=o.accepted_at,
                due_at=o.due_at,
                closed_at=o.closed_at,
                closed_on_time=o.closed_on_time,
                callback=None,
                rework_count=o.rework_count,
                returns=0,
                extended=False,
            )
            for o in self.orders_by_id.values()
            if start <= o.created_at < end
        ]


def _pending(order: WorkOrder, history: list[dict[str, Any]]) -> PendingExtension:
    assert order.extension_requested_at is not None
    requests = [e for e in history if e.get("type") == LifecycleEventName.extension_requested]
    return PendingExtension(
        work_order_id=order.id,
        unit=order.unit,
        kind=order.kind,
        priority=order.priority,
        requested_at=order.extension_requested_at,
        working_days=order.pending_extension_days,
        hours=order.pending_extension_hours,
        reason=requests[-1]["detail"].get("note", "") if requests else "",
        due_at=order.due_at,
    )


def _matches(order: WorkOrder, query: OrderQuery, now: datetime) -> bool:
    overdue = order.status not in _CLOSED and order.due_at < now
    return (
        (query.unit is None or order.unit == query.unit)
        and (query.visible_to is None or query.visible_to in (order.unit, *order.copied_to))
        and (query.status is None or order.status is query.status)
        and (query.kind is None or order.kind is query.kind)
        and (query.priority is None or order.priority is query.priority)
        and (query.overdue is None or overdue is query.overdue)
        and (query.created_from is None or order.created_at >= query.created_from)
        and (query.created_to is None or order.created_at < query.created_to)
        and (query.category is None or order.category is query.category)
        and (query.plate is None or order.subject.plate == query.plate)
        and (query.enterprise_id is None or order.subject.enterprise_id == query.enterprise_id)
        and (not query.statuses or order.status in query.statuses)
        and (query.ids is None or order.id in query.ids)
        and (
            query.extension_pending is None
            or (order.extension_requested_at is not None) is query.extension_pending
        )
        and _closed_within(order, query)
    )


def _closed_within(order: WorkOrder, query: OrderQuery) -> bool:
    if query.closed_from is None and query.closed_to is None:
        return True
    closed = order.closed_at
    return (
        closed is not None
        and (query.closed_from is None or closed >= query.closed_from)
        and (query.closed_to is None or closed < query.closed_to)
    )


@dataclass
class FakeWorker:
    """services.ports.CommandPublisher that decides each command at once, the way the
    worker's handler would record it (``verdict``: None leaves it undecided)."""

    store: InMemoryApiStore
    verdict: Callable[[WorkOrderCommand], DecidedCommand | None]
    published: list[WorkOrderCommand] = field(default_factory=list)
    broker_down: bool = False

    def publish(self, command: WorkOrderCommand) -> None:
        if self.broker_down:
            raise CommandNotPublished("the broker does not answer")
        self.published.append(command)
        decided = self.verdict(command)
        if decided is not None:
            self.store.verdicts.setdefault(command.command_id, decided)


# --- the units of work (services.ports.IntakeStore, CommandStore) ---------------------------


@dataclass
class InMemoryIntakeStore:
    """services.ports.IntakeStore over dicts. A batch's writes are applied when its block
    ends normally; ``races``: how many commits first lose a race (raise LostRace) instead."""

    orders: dict[str, WorkOrder] = field(default_factory=dict)
    #: Source key -> (its order id, the position it was read from).
    sources: dict[SourceKey, tuple[str, str]] = field(default_factory=dict)
    suppressed: dict[SourceKey, dict[str, Any]] = field(default_factory=dict)
    #: (order id, event name, detail) of every history row, in order.
    history: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    dispatched: set[str] = field(default_factory=set)
    originals: dict[str, KeptOriginal] = field(default_factory=dict)
    races: int = 0
    letters_logged: dict[tuple[str, int, int, int | None], DeadLetter] = field(default_factory=dict)
    commits: int = 0

    @contextmanager
    def intake_batch(self, now: datetime) -> Iterator[InMemoryIntakeBatch]:
        batch = InMemoryIntakeBatch(self, now)
        yield batch
        if self.races:
            self.races -= 1
            raise LostRace(RuntimeError("another worker committed first"))
        batch.commit()
        self.commits += 1

    def mark_dispatched(
        self,
        orders: Sequence[WorkOrder],
        now: datetime,
        first_checks: Mapping[str, datetime | None] | None = None,
    ) -> None:
        for order in orders:
            if order.id not in self.dispatched:
                self.dispatched.add(order.id)
                self.history.append((order.id, PipelineEventName.dispatched, {"unit": order.unit}))

    def undispatched(self, limit: int = 1000) -> list[WorkOrder]:
        return [o for o in self.orders.values() if o.id not in self.dispatched][:limit]

    def keep_originals(self, originals: Sequence[KeptOriginal]) -> None:
        for original in originals:
            self.originals.setdefault(original.id, original)

    def log_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            self.letters_logged.setdefault(_position(letter), letter)

    def open_orders(self) -> list[WorkOrder]:
        found = [o for o in self.orders.values() if o.status is not WorkOrderStatus.closed]
        return sorted(found, key=lambda o: (o.created_at, o.id))


class InMemoryIntakeBatch:
    """services.ports.IntakeBatch of an InMemoryIntakeStore."""

    def __init__(self, store: InMemoryIntakeStore, now: datetime) -> None:
        self._store = store
        self.now = now
        self._originals: list[KeptOriginal] = []
        self._letters: list[DeadLetter] = []
        self._signals: list[tuple[SourceKey, str, str, str, dict[str, Any]]] = []
        self._orders: list[WorkOrder] = []
        self._occurrences: dict[str, Occurrences] = {}
        self._suppressed: dict[SourceKey, dict[str, Any]] = {}
        self._dispatching: list[WorkOrder] = []
        self.platforms: dict[str, datetime] = {}

    def keep_originals(self, originals: Sequence[KeptOriginal]) -> None:
        self._originals += originals

    def log_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        self._letters += letters

    def record_platforms(self, platforms: Mapping[str, datetime]) -> None:
        self.platforms = dict(platforms)

    def known_sources(self, keys: Sequence[SourceKey]) -> dict[SourceKey, str | None]:
        found: dict[SourceKey, str | None] = {
            k: self._store.sources[k][0] for k in keys if k in self._store.sources
        }
        return found | {k: None for k in keys if k in self._store.suppressed}

    def source_positions(self, keys: Sequence[SourceKey]) -> dict[SourceKey, tuple[str, str | None]]:
        return {k: self._store.sources[k] for k in keys if k in self._store.sources}

    def orders(self, ids: Sequence[str]) -> list[WorkOrder]:
        return [self._store.orders[i] for i in ids if i in self._store.orders]

    def undispatched(self, ids: Sequence[str]) -> list[WorkOrder]:
        return [o for o in self.orders(ids) if o.id not in self._store.dispatched]

    def open_orders_by_dedupe_key(self, keys: Sequence[str]) -> dict[str, tuple[str, str, datetime]]:
        found: dict[str, tuple[str, str, datetime]] = {}
        for o in sorted(self._store.open_orders(), key=lambda o: o.last_seen_at):
            if o.dedupe_key is not None and o.dedupe_key in keys:
                found[o.dedupe_key] = (o.id, o.unit, o.last_seen_at)
        return found

    def violations(self, keys: Sequence[str], since: datetime) -> dict[str, list[datetime]]:
        found: dict[str, list[datetime]] = {}
        recorded = [(o.violation_key, o.created_at) for o in self._store.orders.values()]
        recorded += [(r["violation_key"], r["received_at"]) for r in self._store.suppressed.values()]
        for key, at in recorded:
            if key is not None and key in keys and at >= since:
                found.setdefault(key, []).append(at)
        return found

    def open_orders_by_subject(self, subjects: Sequence[str]) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for o in self._store.open_orders():
            for subject in {o.subject.plate, o.subject.enterprise_id} & set(subjects):
                found.setdefault(str(subject), []).append(o.id)
        return found

    def record_signal(
        self,
        source: SourceKey,
        order_id: str,
        payload: dict[str, Any],
        position: str,
        event: PipelineEventName,
        detail: dict[str, Any],
        region_code: str | None = None,
    ) -> None:
        self._signals.append((source, order_id, position, event, detail))

    def add_orders(self, orders: Sequence[WorkOrder]) -> None:
        self._orders += orders

    def add_occurrences(self, merged: Mapping[str, Occurrences]) -> None:
        self._occurrences.update(merged)

    def suppress(self, source: SourceKey, record: dict[str, Any]) -> None:
        self._suppressed[source] = {**record, "received_at": self.now}

    def mark_dispatched(
        self, orders: Sequence[WorkOrder], first_checks: Mapping[str, datetime | None] | None = None
    ) -> None:
        self._dispatching += orders

    def commit(self) -> None:
        store = self._store
        store.keep_originals(self._originals)
        store.log_dead_letters(self._letters)
        store.orders |= {o.id: o for o in self._orders}
        for order_id, merged in self._occurrences.items():
            store.orders[order_id] = with_occurrences(store.orders[order_id], merged)
        for source, order_id, position, event, detail in self._signals:
            store.sources[source] = (order_id, position)
            store.history.append((order_id, event, detail))
        store.suppressed |= self._suppressed
        store.mark_dispatched(self._dispatching, self.now)


@dataclass
class InMemoryCommandStore:
    """services.ports.CommandStore over dicts: each order as its work_order row (columns
    by name), the processed command ids, the outbox. ``races`` as InMemoryIntakeStore's."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    processed: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    #: (topic, key, payload, position, published) of every announcement, in order.
    outbox: list[tuple[str, str, str, str | None, bool]] = field(default_factory=list)
    history: list[tuple[str, str, str, dict[str, Any]]] = field(default_factory=list)
    originals: dict[str, KeptOriginal] = field(default_factory=dict)
    #: (order id, level, unit, due_at) of every escalation recorded with a command.
    escalations: list[tuple[str, str, str, datetime]] = field(default_factory=list)
    races: int = 0
    letters_logged: dict[tuple[str, int, int, int | None], DeadLetter] = field(default_factory=dict)

    def add(self, order: WorkOrder) -> WorkOrder:
        self.rows[order.id] = {**order.model_dump(), "returned_at": None, "returned_seconds": 0.0}
        return order

    def order(self, order_id: str) -> WorkOrder:
        row = self.rows[order_id]
        return WorkOrder.model_validate({k: v for k, v in row.items() if k in WorkOrder.model_fields})

    @contextmanager
    def command_batch(self, now: datetime) -> Iterator[InMemoryCommandBatch]:
        # Copies: a block that raises leaves the store as it was (a rollback).
        batch = InMemoryCommandBatch(
            InMemoryCommandStore(
                {k: dict(v) for k, v in self.rows.items()},
                dict(self.processed),
                list(self.outbox),
                list(self.history),
                dict(self.originals),
                list(self.escalations),
                letters_logged=dict(self.letters_logged),
            ),
            now,
        )
        yield batch
        if self.races:
            self.races -= 1
            raise LostRace(RuntimeError("another worker committed first"))
        done = batch.store
        self.rows, self.processed, self.outbox = done.rows, done.processed, done.outbox
        self.history, self.originals = done.history, done.originals
        self.escalations = done.escalations
        self.letters_logged = done.letters_logged

    def keep_originals(self, originals: Sequence[KeptOriginal]) -> None:
        for original in originals:
            self.originals.setdefault(original.id, original)

    def log_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            self.letters_logged.setdefault(_position(letter), letter)

    def unpublished_outbox(self, limit: int = 1000) -> list[dict[str, Any]]:
        unpublished = [(i, row) for i, row in enumerate(self.outbox) if not row[4]]
        return [{"id": i, "topic": t, "key": k, "payload": p} for i, (t, k, p, _, _) in unpublished][:limit]

    def mark_outbox_published(self, ids: Sequence[int], now: datetime) -> None:
        for i in ids:
            topic, key, payload, position, _ = self.outbox[i]
            self.outbox[i] = (topic, key, payload, position, True)


class InMemoryCommandBatch:
    """services.ports.CommandBatch over a copy of an InMemoryCommandStore."""

    def __init__(self, store: InMemoryCommandStore, now: datetime) -> None:
        self.store = store
        self.now = now
        self.position: str | None = None
        self.written: list[Announcement] = []

    def outbox_at(self, positions: Sequence[str]) -> dict[str, list[Announcement]]:
        found: dict[str, list[Announcement]] = {}
        for topic, key, payload, position, _ in self.store.outbox:
            if position is not None and position in positions:
                found.setdefault(position, []).append((topic, key, payload))
        return found

    def keep_originals(self, originals: Sequence[KeptOriginal]) -> None:
        self.store.keep_originals(originals)

    def log_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        self.store.log_dead_letters(letters)

    def processed(self, command_ids: Sequence[str]) -> set[str]:
        return set(command_ids) & set(self.store.processed)

    def lock_orders(self, order_ids: Sequence[str]) -> None:
        pass  # one worker: nothing to wait for

    def order_row(self, order_id: str) -> dict[str, Any] | None:
        row = self.store.rows.get(order_id)
        return None if row is None else dict(row)

    def apply(
        self,
        order_id: str,
        expected_status: WorkOrderStatus,
        changes: dict[str, Any],
        event: LifecycleEventName,
        actor: str,
        detail: dict[str, Any],
    ) -> None:
        row = self.store.rows[order_id]
        if row["status"] != expected_status:
            raise RuntimeError(f"order {order_id} changed under command handling")
        row.update(changes)
        self.store.history.append((order_id, event, actor, detail))

    def refused(self, order_id: str, actor: str, detail: dict[str, Any]) -> None:
        self.store.history.append((order_id, LifecycleEventName.command_rejected, actor, detail))

    def escalate_once(self, order_id: str, level: EscalationLevel, unit: str, due_at: datetime) -> bool:
        if any(e[:2] == (order_id, level.value) for e in self.store.escalations):
            return False
        self.store.escalations.append((order_id, level.value, unit, due_at))
        return True

    def to_outbox(self, topic: OutboxTopic, key: str, payload: str) -> None:
        self.store.outbox.append((topic, key, payload, self.position, self.position is not None))
        if self.position is not None:
            self.written.append((topic, key, payload))

    def record(self, command_id: str, order_id: str, outcome: StrEnum, reason: str) -> None:
        if command_id in self.store.processed:
            raise LostRace(RuntimeError("command_id recorded already"))
        self.store.processed[command_id] = (order_id, outcome.value, reason)

    def order(self, order_id: str) -> WorkOrder:
        return self.store.order(order_id)


def _position(letter: DeadLetter) -> tuple[str, int, int, int | None]:
    source = letter.source
    return source.topic, source.partition, source.offset, source.timestamp_ms
