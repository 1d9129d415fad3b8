"""The work-order repository: the only code that reads or writes work-order tables."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from schemas.deadletter import KeptOriginal
from schemas.signal import SignalKind
from schemas.workorder import Subject, WorkOrder, WorkOrderStatus
from storage import dead_letters, platforms_seen
from storage.bulk import insert_rows
from storage.dedupe_slots import DedupeSlotTaken, free_slots, slot_taken
from storage.one_of import one_of
from storage.tables import (
    UtcDateTime,
    escalation,
    outbox,
    processed_command,
    suppressed_signal,
    work_order,
    work_order_event,
    work_order_source,
)

PIPELINE_ACTOR = "pipeline"
Result = TypeVar("Result")


def source_key(kind: SignalKind, source_id: str) -> str:
    return f"{kind.value}:{source_id}"


class WorkOrderRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        return self._engine

    def run_batch(self, work: Callable[[IntakeBatch], Result], now: datetime) -> Result:
        """Run ``work`` in one transaction. Two workers racing on one publisher id, or opening
        an order for one dedupe key, make the loser's transaction fail on a unique index; it
        is run once more and then sees the winner's rows (a known signal, an open order to
        merge into). Losing the dedupe race again raises DedupeSlotTaken: a conflict the
        caller retries (services.failures), not a failure of the batch's messages."""
        try:
            return self._intake_transaction(work, now)
        except IntegrityError:
            pass
        try:
            return self._intake_transaction(work, now)
        except IntegrityError as exc:
            if slot_taken(exc):
                raise DedupeSlotTaken() from exc
            raise

    def _intake_transaction(self, work: Callable[[IntakeBatch], Result], now: datetime) -> Result:
        with self._engine.begin() as conn:
            batch = IntakeBatch(conn, now)
            result = work(batch)
            batch.flush()
            return result

    def run_commands(self, work: Callable[[CommandBatch], Result], now: datetime) -> Result:
        """Run ``work`` in one transaction; a command_id recorded concurrently makes it run again."""
        try:
            with self._engine.begin() as conn:
                return work(CommandBatch(conn, now))
        except IntegrityError:
            with self._engine.begin() as conn:
                return work(CommandBatch(conn, now))

    def keep_originals(self, originals: Sequence[KeptOriginal]) -> None:
        """Keep masked dead letters' originals, in a transaction of their own."""
        dead_letters.DeadLetterOriginals(self._engine).keep(originals)

    def unpublished_outbox(self, limit: int = 1000) -> list[RowMapping]:
        """Outbox messages not yet published, oldest first (the order they were written in)."""
        with self._engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(outbox)
                    .where(outbox.c.published_at.is_(None))
                    .order_by(outbox.c.id)
                    .limit(limit)
                ).mappings()
            )

    def mark_outbox_published(self, ids: Sequence[int], now: datetime) -> None:
        if ids:
            with self._engine.begin() as conn:
                conn.execute(sa.update(outbox).where(outbox.c.id.in_(list(ids))).values(published_at=now))

    def read_only(self, work: Callable[[IntakeBatch], Result], now: datetime) -> Result:
        """Run ``work`` against the current state and roll back whatever it wrote."""
        with self._engine.connect() as conn:
            try:
                return work(IntakeBatch(conn, now))
            finally:
                conn.rollback()

    def stored_signals(
        self, received_from: datetime, received_to: datetime
    ) -> list[tuple[dict[str, Any], datetime]]:
        """Every valid signal received in [from, to), with when: the payloads of orders'
        sources and of suppressed signals, as received."""
        rows: list[tuple[dict[str, Any], datetime]] = []
        with self._engine.connect() as conn:
            for table in (work_order_source, suppressed_signal):
                rows += [
                    (row.payload, row.received_at)
                    for row in conn.execute(
                        sa.select(table.c.payload, table.c.received_at).where(
                            table.c.received_at >= received_from, table.c.received_at < received_to
                        )
                    )
                ]
        return rows

    def running_orders(
        self, reminded_by: datetime | None = None, reminder_at: float = 0.0, chunk: int = 5000
    ) -> Iterator[list[RowMapping]]:
        """id, unit, status, kind, priority, created_at and due_at of orders whose clock runs,
        ``chunk`` at a time (by id): a province's open orders are never all in memory.

        With ``reminded_by``: only those whose reminder time, ``created_at + (due_at -
        created_at) * reminder_at`` (the first of their escalations), is at or before it, give
        or take a minute (the caller decides exactly). The database does that arithmetic:
        reading every running order each check cost ~10 ms per 1,000 of the leader's CPU.
        """
        running = ["dispatched", "accepted", "in_progress", "feedback_submitted"]
        c = work_order.c
        after = ""
        while True:
            with self._engine.connect() as conn:
                query = (
                    sa.select(c.id, c.unit, c.status, c.kind, c.priority, c.created_at, c.due_at)
                    .where(c.status.in_(running), c.id > after)
                    .order_by(c.id)
                    .limit(chunk)
                )
                if reminded_by is not None:
                    query = query.where(_reminder_due(conn.dialect.name, reminded_by, reminder_at))
                rows = list(conn.execute(query).mappings())
            if not rows:
                return
            yield rows
            after = rows[-1]["id"]

    def record_escalations(self, rows: Sequence[dict[str, Any]], now: datetime) -> int:
        """Insert escalations not yet recorded (one per order, level and due_at); the new ones
        also go into their orders' audit trail. Returns how many were new."""
        if not rows:
            return 0
        new = 0
        with self._engine.begin() as conn:
            # Most are recorded already (an overdue order is a candidate at every check):
            # one read skips them, instead of one refused INSERT each.
            recorded: set[tuple[str, str, datetime]] = set()
            c = escalation.c
            for chunk in _chunks(sorted({row["work_order_id"] for row in rows})):
                recorded.update(
                    (r.work_order_id, r.level, r.due_at)
                    for r in conn.execute(
                        sa.select(c.work_order_id, c.level, c.due_at).where(c.work_order_id.in_(chunk))
                    )
                )
            dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            for row in rows:
                if (row["work_order_id"], row["level"], row["due_at"]) in recorded:
                    continue
                inserted = conn.execute(
                    dialect_insert(escalation)
                    .values(**row, fired_at=now, published_at=None)
                    .on_conflict_do_nothing(index_elements=["work_order_id", "level", "due_at"])
                    .returning(escalation.c.id)
                ).first()
                if inserted is None:
                    continue
                new += 1
                detail = {
                    "level": row["level"],
                    "recipient": row["unit"] if row["level"] == "reminder" else None,
                }
                conn.execute(
                    work_order_event.insert(),
                    [
                        {
                            "work_order_id": row["work_order_id"],
                            "at": now,
                            "type": "reminder_sent" if row["level"] == "reminder" else "escalated",
                            "actor": PIPELINE_ACTOR,
                            "detail": {**detail, "escalation_id": inserted.id},
                        }
                    ],
                )
        return new

    def unpublished_escalations(self, limit: int = 1000) -> list[dict[str, Any]]:
        c = escalation.c
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(escalation, work_order.c.kind, work_order.c.priority)
                .join(work_order, work_order.c.id == c.work_order_id)
                .where(c.published_at.is_(None))
                .order_by(c.id)
                .limit(limit)
            ).mappings()
            return [dict(row) for row in rows]

    def mark_escalations_published(self, ids: Sequence[int], now: datetime) -> None:
        if ids:
            with self._engine.begin() as conn:
                conn.execute(
                    sa.update(escalation).where(escalation.c.id.in_(list(ids))).values(published_at=now)
                )

    def open_with_provisional_deadline(self) -> list[WorkOrder]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(work_order).where(
                    work_order.c.deadline_provisional.is_(True),
                    work_order.c.status != WorkOrderStatus.closed.value,
                )
            ).mappings()
            return self._with_sources(conn, list(rows))

    def set_deadline(
        self, order_id: str, due_at: datetime, provisional: bool, reason: str, now: datetime
    ) -> None:
        with self._engine.begin() as conn:
            previous = conn.execute(
                sa.select(work_order.c.due_at).where(work_order.c.id == order_id)
            ).scalar_one()
            conn.execute(
                sa.update(work_order)
                .where(work_order.c.id == order_id)
                .values(due_at=due_at, deadline_provisional=provisional, updated_at=now)
            )
            detail = {
                "from": previous.isoformat(),
                "to": due_at.isoformat(),
                "provisional": provisional,
                "reason": reason,
            }
            conn.execute(
                work_order_event.insert(),
                [
                    {
                        "work_order_id": order_id,
                        "at": now,
                        "type": "deadline_changed",
                        "actor": PIPELINE_ACTOR,
                        "detail": detail,
                    }
                ],
            )

    def mark_dispatched(self, orders: Sequence[WorkOrder], now: datetime) -> None:
        """Record that these orders were published to their squads (once per order)."""
        if not orders:
            return
        with self._engine.begin() as conn:
            _record_dispatched(conn, [order.id for order in orders], now)

    def undispatched(self, limit: int = 1000) -> list[WorkOrder]:
        """Registered orders not yet published (e.g. the worker died between the two steps)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(work_order)
                .where(work_order.c.dispatched_at.is_(None))
                .order_by(work_order.c.created_at)
                .limit(limit)
            ).mappings()
            return self._with_sources(conn, list(rows))

    def get(self, order_id: str) -> WorkOrder | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(work_order).where(work_order.c.id == order_id)).mappings().first()
            return self._with_sources(conn, [row])[0] if row else None

    def history(self, order_id: str) -> list[dict[str, Any]]:
        """The order's audit trail, oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(work_order_event)
                .where(work_order_event.c.work_order_id == order_id)
                .order_by(work_order_event.c.id)
            ).mappings()
            return [dict(row) for row in rows]

    def list_orders(
        self,
        *,
        now: datetime,
        unit: str | None = None,
        visible_to: str | None = None,
        status: str | None = None,
        kind: str | None = None,
        priority: str | None = None,
        overdue: bool | None = None,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[WorkOrder]:
        """Orders matching every filter given, newest first. Overdue: open, not returned (its
        clock stopped) and past due_at.
        ``visible_to``: the unit's own orders and those copied to it."""
        c = work_order.c
        query = sa.select(work_order)
        if visible_to is not None:
            copied = sa.func.instr("," + c.copied_to + ",", f",{visible_to},") > 0
            if self._engine.dialect.name == "postgresql":
                copied = sa.func.strpos("," + c.copied_to + ",", f",{visible_to},") > 0
            query = query.where(sa.or_(c.unit == visible_to, copied))
        for column, value in ((c.unit, unit), (c.status, status), (c.kind, kind), (c.priority, priority)):
            if value is not None:
                query = query.where(column == value)
        if overdue is not None:
            # A returned order's clock is stopped (see storage/order_gauges.py): never overdue.
            running = c.status.notin_([WorkOrderStatus.closed.value, WorkOrderStatus.returned.value])
            late = sa.and_(running, c.due_at < now)
            query = query.where(late if overdue else sa.not_(late))
        if created_from is not None:
            query = query.where(c.created_at >= created_from)
        if created_to is not None:
            query = query.where(c.created_at < created_to)
        query = query.order_by(c.created_at.desc(), c.id).limit(limit).offset(offset)
        with self._engine.connect() as conn:
            return self._with_sources(conn, list(conn.execute(query).mappings()))

    def command_outcome(self, command_id: str) -> dict[str, Any] | None:
        """How a command was handled: outcome (applied or a refusal code), reason, order id."""
        with self._engine.connect() as conn:
            row = (
                conn.execute(sa.select(processed_command).where(processed_command.c.command_id == command_id))
                .mappings()
                .first()
            )
            return dict(row) if row else None

    def sources(self, order_id: str) -> list[dict[str, Any]]:
        """The signals merged into the order, as received (extra fields included), oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(work_order_source)
                .where(work_order_source.c.work_order_id == order_id)
                .order_by(work_order_source.c.received_at, work_order_source.c.source_key)
            ).mappings()
            return [dict(row) for row in rows]

    def suppressed(self) -> list[dict[str, Any]]:
        """Signals triage recorded as making no order, oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(suppressed_signal).order_by(
                    suppressed_signal.c.received_at, suppressed_signal.c.source_key
                )
            ).mappings()
            return [dict(row) for row in rows]

    def count(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(work_order)).scalar_one())

    @staticmethod
    def _with_sources(conn: Connection, rows: list[RowMapping]) -> list[WorkOrder]:
        if not rows:
            return []
        ids = [row["id"] for row in rows]
        sources: dict[str, list[str]] = {}
        for source in conn.execute(_SOURCES_OF_ORDERS, {"ids": ids}):
            sources.setdefault(source.work_order_id, []).append(source.source_key.split(":", 1)[1])
        return [_order_from_row(row, sources.get(row["id"], [])) for row in rows]

    def open_order_stats(self, now: datetime) -> list[dict[str, Any]]:
        """Open (not closed) orders by unit, kind and priority: ``open``, ``overdue`` (past
        due_at, as ``list_orders(overdue=True)`` counts them) and ``oldest_created_at``."""
        c = work_order.c
        open_statuses = [status.value for status in WorkOrderStatus if status is not WorkOrderStatus.closed]
        query = (
            sa.select(
                c.unit,
                c.kind,
                c.priority,
                sa.func.count().label("open"),
                sa.func.coalesce(sa.func.sum(sa.case((c.due_at < now, 1), else_=0)), 0).label("overdue"),
                sa.func.min(c.created_at).label("oldest_created_at"),
            )
            .where(c.status.in_(open_statuses))
            .group_by(c.unit, c.kind, c.priority)
        )
        with self._engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]


class IntakeBatch:
    """One intake batch's reads and writes, in one transaction (see WorkOrderRepository.run_batch)."""

    def __init__(self, conn: Connection, now: datetime) -> None:
        self._conn = conn
        self.now = now
        # What the batch decided, written by flush() in one statement per table.
        self._new: dict[str, _NewOrder] = {}
        self._merges: dict[str, _Merged] = {}
        self._sources: list[dict[str, Any]] = []
        self._events: list[dict[str, Any]] = []
        self._suppressed: list[dict[str, Any]] = []
        self._dispatching: list[str] = []
        #: Dedupe key -> the order seen holding its slot (a new order takes it over).
        self._slot_holders: dict[str, str] = {}
        self._platforms: dict[str, datetime] = {}

    def keep_originals(self, originals: Sequence[KeptOriginal]) -> None:
        """Keep masked dead letters' originals, in this batch's transaction."""
        dead_letters.keep(self._conn, originals)

    def record_platforms(self, platforms: Mapping[str, datetime]) -> None:
        """Each publishing platform's newest event time, written by flush() in this batch's
        transaction, last: the rows every worker updates are locked until commit only."""
        self._platforms = dict(platforms)

    def known_sources(self, keys: Sequence[str]) -> dict[str, str | None]:
        """Source keys already recorded -> their order id (None for a suppressed signal)."""
        if not keys:
            return {}
        known: dict[str, str | None] = {}
        for chunk in _chunks(list(keys)):
            for key, order_id in self._conn.execute(_KNOWN_SOURCES, {"keys": chunk}):
                if order_id is None:  # suppressed: it made no order, whatever else says so
                    known[key] = None
                else:
                    known.setdefault(key, order_id)
        return known

    def source_positions(self, keys: Sequence[str]) -> dict[str, tuple[str, str | None]]:
        """Source key -> (its order id, the topic/partition/offset it was recorded from)."""
        found: dict[str, tuple[str, str | None]] = {}
        for chunk in _chunks(list(keys)):
            for key, order_id, position in self._conn.execute(_SOURCE_POSITIONS, {"keys": chunk}):
                found[key] = (order_id, position)
        return found

    def orders(self, ids: Sequence[str]) -> list[WorkOrder]:
        """The stored orders of ``ids`` (those that exist)."""
        found: list[RowMapping] = []
        for chunk in _chunks(list(ids)):
            found += self._conn.execute(_ORDERS_OF, {"ids": chunk}).mappings()
        return WorkOrderRepository._with_sources(self._conn, found)

    def open_orders_by_dedupe_key(self, keys: Sequence[str]) -> dict[str, tuple[str, str, datetime]]:
        """Dedupe key -> (order id, unit, last seen) of its most recently seen open order.
        Also notes which order holds each key's slot: a new order for the key takes it over."""
        found: dict[str, tuple[str, str, datetime]] = {}
        for chunk in _chunks(list(keys)):
            for row in self._conn.execute(_OPEN_ORDERS_BY_DEDUPE_KEY, {"keys": chunk}):
                if row.dedupe_slot is not None:
                    self._slot_holders[row.dedupe_slot] = row.id
                if row.status != WorkOrderStatus.closed.value:
                    found[row.dedupe_key] = (row.id, row.unit, row.last_seen_at)
        return found

    def violations(self, keys: Sequence[str], since: datetime) -> dict[str, list[datetime]]:
        """Violation key -> when each earlier violation under it was recorded, since ``since``."""
        found: dict[str, list[datetime]] = {}
        for chunk in _chunks(list(keys)):
            for key, at in self._conn.execute(_VIOLATIONS, {"keys": chunk, "since": since}):
                found.setdefault(key, []).append(at)
        return found

    def open_orders_by_subject(self, subjects: Sequence[str]) -> dict[str, list[str]]:
        """Plate or enterprise id -> ids of open orders about it, oldest first."""
        found: dict[str, list[str]] = {}
        for chunk in _chunks(list(subjects)):
            wanted = set(chunk)
            for row in self._conn.execute(_OPEN_ORDERS_BY_SUBJECT, {"subjects": chunk}):
                for subject in {row.plate, row.enterprise_id} & wanted:
                    found.setdefault(subject, []).append(row.id)
        return found

    def add_order(
        self, order: WorkOrder, source: str, payload: dict[str, Any], detail: dict[str, Any], position: str
    ) -> None:
        """Register a new order (written when the batch flushes); ``position``: topic/partition/offset."""
        self._new[order.id] = _NewOrder(order, [source.split(":", 1)[1]])
        self._add_source(source, order.id, order.kind, payload, position)
        self._event(order.id, "registered", detail)

    def merge(
        self,
        order_id: str,
        source: str,
        kind: SignalKind,
        occurred_at: datetime,
        payload: dict[str, Any],
        detail: dict[str, Any],
        position: str,
    ) -> None:
        """Count one more occurrence of an open order's signal, keeping its source as evidence."""
        target = self._new.get(order_id) or self._merges.setdefault(order_id, _Merged(occurred_at))
        target.absorb(source.split(":", 1)[1], occurred_at)
        self._add_source(source, order_id, kind, payload, position)
        self._event(order_id, "merged", detail)

    def suppress(self, record: dict[str, Any]) -> None:
        """Record a signal triage decided makes no order (columns of suppressed_signal)."""
        self._suppressed.append({**record, "received_at": self.now})

    def created(self) -> list[WorkOrder]:
        """The orders this batch registered, with what later signals of the batch merged into them."""
        return [new.current() for new in self._new.values()]

    def undispatched(self, ids: Sequence[str]) -> list[WorkOrder]:
        """Those of ``ids`` registered earlier but never published."""
        found: list[RowMapping] = []
        for chunk in _chunks(list(ids)):
            found += self._conn.execute(_UNDISPATCHED_OF, {"ids": chunk}).mappings()
        return WorkOrderRepository._with_sources(self._conn, found)

    def mark_dispatched(self, orders: Sequence[WorkOrder]) -> None:
        """Record these orders as dispatched in this transaction (when the batch flushes)."""
        self._dispatching += [order.id for order in orders]

    def flush(self) -> None:
        """Write what the batch decided: one multi-row statement per table (orders first: the
        other rows refer to them), merges into earlier orders as one UPDATE per order."""
        self._insert_orders()
        if self._merges:
            # Sorted: concurrent workers lock the rows they update in the same order.
            self._conn.execute(
                _MERGE_INTO_ORDER,
                [merged.parameters(order_id, self.now) for order_id, merged in sorted(self._merges.items())],
            )
        for table, rows in (
            (work_order_source, self._sources),
            (work_order_event, self._events),
            (suppressed_signal, self._suppressed),
        ):
            insert_rows(self._conn, table, rows)
        if self._dispatching:
            _record_dispatched(self._conn, self._dispatching, self.now)
        platforms_seen.record(self._conn, self._platforms, self.now)
        self._new, self._merges, self._dispatching, self._platforms = {}, {}, [], {}
        self._sources, self._events, self._suppressed = [], [], []

    def _insert_orders(self) -> None:
        """Insert the new orders; each key's last new order takes its slot from the holder
        this batch saw (an earlier one of the batch was superseded within it)."""
        slots: dict[str, str] = {}  # key -> the order that takes its slot (the last one wins)
        for order_id, new in self._new.items():
            if new.order.dedupe_key is not None:
                slots[new.order.dedupe_key] = order_id
        free_slots(self._conn, self._slot_holders, list(slots))
        rows = [new.row(self.now) for new in self._new.values()]
        for row in rows:
            row["dedupe_slot"] = row["dedupe_key"] if slots.get(row["dedupe_key"]) == row["id"] else None
        # Slots in key order: two workers inserting the same keys wait for each other in one
        # order (in batch order they could deadlock).
        insert_rows(self._conn, work_order, sorted(rows, key=lambda row: row["dedupe_slot"] or ""))
        self._slot_holders.update(slots)

    def _add_source(
        self, source: str, order_id: str, kind: SignalKind, payload: dict[str, Any], position: str
    ) -> None:
        self._sources.append(
            {
                "source_key": source,
                "work_order_id": order_id,
                "kind": kind.value,
                "received_at": self.now,
                "payload": payload,
                "position": position,
            }
        )

    def _event(self, order_id: str, type_: str, detail: dict[str, Any]) -> None:
        self._events.append(
            {
                "work_order_id": order_id,
                "at": self.now,
                "type": type_,
                "actor": PIPELINE_ACTOR,
                "detail": detail,
            }
        )


class _Merged:
    """Signals merged in this batch into an order registered earlier."""

    def __init__(self, occurred_at: datetime) -> None:
        self.count = 0
        self.first_seen_at = self.last_seen_at = occurred_at

    def absorb(self, _source_id: str, occurred_at: datetime) -> None:
        self.count += 1
        self.first_seen_at = min(self.first_seen_at, occurred_at)
        self.last_seen_at = max(self.last_seen_at, occurred_at)

    def parameters(self, order_id: str, now: datetime) -> dict[str, Any]:
        return {
            "m_id": order_id,
            "m_count": self.count,
            "m_first": self.first_seen_at,
            "m_last": self.last_seen_at,
            "m_now": now,
        }


class _NewOrder:
    """An order registered in this batch, and the signals later merged into it."""

    def __init__(self, order: WorkOrder, source_ids: list[str]) -> None:
        self.order = order
        self.source_ids = source_ids
        self.merged: _Merged | None = None
        self._current: WorkOrder | None = None

    def absorb(self, source_id: str, occurred_at: datetime) -> None:
        self._current = None
        self.source_ids.append(source_id)
        self.merged = self.merged or _Merged(occurred_at)
        self.merged.absorb(source_id, occurred_at)

    def current(self) -> WorkOrder:
        """The order as the database holds it once the batch is written (as a re-read returns it)."""
        if self._current is None:
            self._current = self._build()
        return self._current

    def _build(self) -> WorkOrder:
        update: dict[str, Any] = {
            "source_ids": tuple(sorted(self.source_ids)),
            "related_ids": tuple(sorted(self.order.related_ids)),
        }
        if self.merged is not None:
            update["occurrences"] = self.order.occurrences + self.merged.count
            update["first_seen_at"] = min(self.order.first_seen_at, self.merged.first_seen_at)
            update["last_seen_at"] = max(self.order.last_seen_at, self.merged.last_seen_at)
        return self.order.model_copy(update=update)

    def row(self, now: datetime) -> dict[str, Any]:
        return _order_row(self.current(), now)


_c = work_order.c


_OPEN = _c.status != WorkOrderStatus.closed.value

# One statement each (a statement costs ~0.3 ms per batch whatever its rows): publisher ids
# already recorded as an order's source or as suppressed (order id NULL).
_KNOWN_SOURCES = sa.union_all(
    sa.select(work_order_source.c.source_key, work_order_source.c.work_order_id).where(
        one_of(work_order_source.c.source_key, "keys")
    ),
    sa.select(suppressed_signal.c.source_key, sa.null().label("work_order_id")).where(
        one_of(suppressed_signal.c.source_key, "keys")
    ),
)
# Open orders, and a closed order still holding a slot (written by hand, or restored):
# taken over like any other holder, never merged into.
_OPEN_ORDERS_BY_DEDUPE_KEY = (
    sa.select(_c.id, _c.unit, _c.dedupe_key, _c.last_seen_at, _c.status, _c.dedupe_slot)
    .where(one_of(_c.dedupe_key, "keys"), sa.or_(_OPEN, _c.dedupe_slot.is_not(None)))
    .order_by(_c.last_seen_at)
)
_VIOLATIONS = sa.union_all(
    *(
        sa.select(key_column, at_column)
        .select_from(table)
        .where(one_of(key_column, "keys"), at_column >= sa.bindparam("since"))
        for key_column, at_column, table in (
            (_c.violation_key, _c.created_at, work_order),
            (suppressed_signal.c.violation_key, suppressed_signal.c.received_at, suppressed_signal),
        )
    )
)
_OPEN_ORDERS_BY_SUBJECT = (
    sa.select(_c.id, _c.plate, _c.enterprise_id)
    .where(_OPEN, sa.or_(one_of(_c.plate, "subjects"), one_of(_c.enterprise_id, "subjects")))
    .order_by(_c.created_at, _c.id)
)
_UNDISPATCHED_OF = sa.select(work_order).where(one_of(_c.id, "ids"), _c.dispatched_at.is_(None))
_ORDERS_OF = sa.select(work_order).where(one_of(_c.id, "ids"))
_LOCK_ORDERS = sa.select(_c.id).where(one_of(_c.id, "ids")).order_by(_c.id).with_for_update()
_SOURCE_POSITIONS = sa.select(
    work_order_source.c.source_key, work_order_source.c.work_order_id, work_order_source.c.position
).where(one_of(work_order_source.c.source_key, "keys"))
_SOURCES_OF_ORDERS = (
    sa.select(work_order_source.c.work_order_id, work_order_source.c.source_key)
    .where(one_of(work_order_source.c.work_order_id, "ids"))
    .order_by(work_order_source.c.received_at, work_order_source.c.source_key)
)
# Rows locked in id order, as intake merges lock them (PostgreSQL found deadlocks with the
# scan order when a worker merged into orders another transaction was marking).
_MARK_DISPATCHED = (
    sa.update(work_order)
    .where(
        _c.id.in_(
            sa.select(_c.id)
            .where(one_of(_c.id, "ids"), _c.dispatched_at.is_(None))
            .order_by(_c.id)
            .with_for_update()
        )
    )
    .values(
        dispatched_at=sa.bindparam("now"),
        updated_at=sa.bindparam("now"),
        status=WorkOrderStatus.dispatched.value,
    )
    .returning(_c.id, _c.unit)
)

_MERGE_INTO_ORDER = (
    sa.update(work_order)
    .where(_c.id == sa.bindparam("m_id"))
    .values(
        occurrences=_c.occurrences + sa.bindparam("m_count"),
        last_seen_at=sa.case(
            (_c.last_seen_at < sa.bindparam("m_last", type_=UtcDateTime()), sa.bindparam("m_last")),
            else_=_c.last_seen_at,
        ),
        first_seen_at=sa.case(
            (_c.first_seen_at > sa.bindparam("m_first", type_=UtcDateTime()), sa.bindparam("m_first")),
            else_=_c.first_seen_at,
        ),
        updated_at=sa.bindparam("m_now", type_=UtcDateTime()),
    )
)


class CommandBatch:
    """Reads and writes of a batch of lifecycle commands, in one transaction."""

    def __init__(self, conn: Connection, now: datetime) -> None:
        self._conn = conn
        self.now = now
        #: Exactly once: the position of the command being handled. Its announcements are
        #: stored with it, as published: they go out in the command's Kafka transaction.
        self.position: str | None = None
        #: (topic, key, payload) of each announcement written with a position, in order.
        self.written: list[tuple[str, str, str]] = []

    def outbox_at(self, positions: Sequence[str]) -> dict[str, list[tuple[str, str, str]]]:
        """Announcements stored from these command positions, (topic, key, payload) in order."""
        found: dict[str, list[tuple[str, str, str]]] = {}
        for chunk in _chunks(sorted(set(positions))):
            rows = self._conn.execute(
                sa.select(outbox.c.position, outbox.c.topic, outbox.c.key, outbox.c.payload)
                .where(outbox.c.position.in_(chunk))
                .order_by(outbox.c.id)
            )
            for row in rows:
                found.setdefault(row.position, []).append((row.topic, row.key, row.payload))
        return found

    def keep_originals(self, originals: Sequence[KeptOriginal]) -> None:
        """Keep masked dead letters' originals, in this batch's transaction."""
        dead_letters.keep(self._conn, originals)

    def processed(self, command_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(list(command_ids)):
            found.update(
                self._conn.execute(
                    sa.select(processed_command.c.command_id).where(processed_command.c.command_id.in_(chunk))
                ).scalars()
            )
        return found

    def lock_orders(self, order_ids: Sequence[str]) -> None:
        """Lock the orders a batch of commands will touch, all at once and in id order: the
        order intake's merges and dispatch marks lock them in. Locking them one by one in
        command order deadlocked against those (PostgreSQL, bench/README drills)."""
        if self._conn.dialect.name != "postgresql" or not order_ids:
            return
        for chunk in _chunks(sorted(set(order_ids))):
            self._conn.execute(_LOCK_ORDERS, {"ids": chunk}).all()

    def order_row(self, order_id: str) -> RowMapping | None:
        """The order's row, locked for this transaction where the database can."""
        query = sa.select(work_order).where(work_order.c.id == order_id)
        if self._conn.dialect.name == "postgresql":
            query = query.with_for_update()
        return self._conn.execute(query).mappings().first()

    def apply(
        self,
        order_id: str,
        expected_status: str,
        changes: dict[str, Any],
        event: str,
        actor: str,
        detail: dict[str, Any],
    ) -> None:
        values = {
            key: (value.value if isinstance(value, StrEnum) else value) for key, value in changes.items()
        }
        if values.get("status") == WorkOrderStatus.closed.value:
            values["dedupe_slot"] = None  # a closed order absorbs nothing: a new one may open
        updated = self._conn.execute(
            sa.update(work_order)
            .where(work_order.c.id == order_id, work_order.c.status == expected_status)
            .values(**values, updated_at=self.now)
        ).rowcount
        if updated != 1:
            raise RuntimeError(f"order {order_id} changed under command handling")
        self._conn.execute(
            work_order_event.insert(),
            [{"work_order_id": order_id, "at": self.now, "type": event, "actor": actor, "detail": detail}],
        )

    def refused(self, order_id: str, actor: str, detail: dict[str, Any]) -> None:
        """A refused command is part of the order's history too (执法全过程记录)."""
        self._conn.execute(
            work_order_event.insert(),
            [
                {
                    "work_order_id": order_id,
                    "at": self.now,
                    "type": "command_rejected",
                    "actor": actor,
                    "detail": detail,
                }
            ],
        )

    def to_outbox(self, topic: str, key: str, payload: str) -> None:
        row = {"topic": topic, "key": key, "payload": payload, "created_at": self.now}
        if self.position is not None:
            row |= {"position": self.position, "published_at": self.now}
            self.written.append((topic, key, payload))
        self._conn.execute(outbox.insert(), [row])

    def record(self, command_id: str, order_id: str, outcome: str, reason: str) -> None:
        self._conn.execute(
            processed_command.insert(),
            [
                {
                    "command_id": command_id,
                    "work_order_id": order_id,
                    "received_at": self.now,
                    "outcome": outcome,
                    "reason": reason,
                }
            ],
        )

    def order(self, order_id: str) -> WorkOrder:
        row = self._conn.execute(sa.select(work_order).where(work_order.c.id == order_id)).mappings().one()
        return WorkOrderRepository._with_sources(self._conn, [row])[0]


def _record_dispatched(conn: Connection, ids: list[str], now: datetime) -> None:
    """Mark ``ids`` dispatched (those not marked yet) with one ``dispatched`` event each."""
    newly = conn.execute(_MARK_DISPATCHED, {"ids": ids, "now": now}).all()
    rows = [
        {
            "work_order_id": row.id,
            "at": now,
            "type": "dispatched",
            "actor": PIPELINE_ACTOR,
            "detail": {"unit": row.unit},
        }
        for row in newly
    ]
    insert_rows(conn, work_order_event, rows)


def _reminder_due(dialect: str, by: datetime, reminder_at: float) -> sa.ColumnElement[bool]:
    """``created_at + (due_at - created_at) * reminder_at <= by + 1 minute``, in the database."""
    c = work_order.c
    margin = timedelta(minutes=1)
    bound = sa.bindparam("reminded_by", by + margin, type_=UtcDateTime())
    if dialect == "postgresql":
        seconds: Callable[[Any], Any] = functools.partial(sa.extract, "epoch")
    else:  # SQLite keeps UTC times as text; julianday() reads them as days.
        seconds = sa.func.julianday
    created, due = seconds(c.created_at), seconds(c.due_at)
    reminder: sa.ColumnElement[bool] = created + (due - created) * reminder_at <= seconds(bound)
    return reminder


def _chunks(items: list[str], size: int = 500) -> list[list[str]]:
    """Keep IN lists within every backend's parameter limits."""
    return [items[i : i + size] for i in range(0, len(items), size)]


#: WorkOrder fields stored in work_order columns of the same name.
_SAME_NAME_COLUMNS = tuple(
    name
    for name in WorkOrder.model_fields
    if name in work_order.c and name not in ("copied_to", "related_ids")
)
_SUBJECT_COLUMNS = tuple(Subject.model_fields)


def _order_row(order: WorkOrder, now: datetime) -> dict[str, Any]:
    """The work_order row of a new order."""
    return {
        **{name: getattr(order, name) for name in _SAME_NAME_COLUMNS},
        **{name: getattr(order.subject, name) for name in _SUBJECT_COLUMNS},
        "copied_to": ",".join(order.copied_to),
        "related_ids": ",".join(sorted(order.related_ids)),
        "updated_at": now,
        "dispatched_at": None,
    }


def _order_from_row(row: RowMapping, source_ids: list[str]) -> WorkOrder:
    return WorkOrder.model_validate(
        {
            **{name: row[name] for name in _SAME_NAME_COLUMNS},
            "subject": {name: row[name] for name in _SUBJECT_COLUMNS},
            "source_ids": tuple(source_ids),
            "related_ids": tuple(order_id for order_id in row["related_ids"].split(",") if order_id),
            "copied_to": tuple(unit for unit in row["copied_to"].split(",") if unit),
        }
    )
