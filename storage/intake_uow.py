"""The intake's unit of work: one batch's reads and writes, in one transaction.

The service opens it (``with repository.intake_batch(now) as batch:``); the batch's writes
are buffered and written when the block ends normally, one multi-row statement per table,
then committed. A unique index refusing a row another worker committed first raises
storage.transaction.LostRace: the service does the whole batch again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from workorder_pipeline.schemas.deadletter import DeadLetter, KeptOriginal
from workorder_pipeline.schemas.signal import SourceKey
from workorder_pipeline.schemas.workorder import Occurrences, PipelineEventName, WorkOrder, WorkOrderStatus
from workorder_pipeline.storage import audit_trail, dead_letters, intake_queries, platforms_seen
from workorder_pipeline.storage.bulk import chunks, insert_rows, refuse_naive
from workorder_pipeline.storage.dedupe_slots import DedupeSlotTaken, free_slots, slot_taken
from workorder_pipeline.storage.dispatch_marks import first_checks_of, record_dispatched
from workorder_pipeline.storage.order_rows import order_row, with_sources
from workorder_pipeline.storage.tables import suppressed_signal, work_order, work_order_source
from workorder_pipeline.storage.transaction import races_reported


@contextmanager
def intake_unit(engine: Engine, now: datetime, commit: bool = True) -> Iterator[IntakeBatch]:
    """An intake batch in a transaction: written and committed when the block ends normally
    (``commit=False``: rolled back whatever it wrote, for a look at the current state)."""
    if not commit:
        with engine.connect() as conn:
            try:
                yield IntakeBatch(conn, now)
            finally:
                conn.rollback()
        return
    with races_reported(_what_losing_twice_means), engine.begin() as conn:
        batch = IntakeBatch(conn, now)
        yield batch
        batch.flush()


def _what_losing_twice_means(exc: IntegrityError) -> Exception:
    """Losing the dedupe race again is a conflict the caller retries (services.failures),
    not a failure of the batch's messages."""
    if not slot_taken(exc):
        return exc
    taken = DedupeSlotTaken()
    taken.__cause__ = exc
    return taken


class IntakeBatch:
    """services.ports.IntakeBatch over one database connection."""

    def __init__(self, conn: Connection, now: datetime) -> None:
        self._conn = conn
        self.now = now
        # What the batch decided, written by flush() in one statement per table.
        self._orders: list[WorkOrder] = []
        self._merges: dict[str, Occurrences] = {}
        self._sources: list[dict[str, Any]] = []
        self._events: list[dict[str, Any]] = []
        self._suppressed: list[dict[str, Any]] = []
        self._dispatching: dict[str, datetime | None] = {}
        #: Dedupe key -> the order seen holding its slot (a new order takes it over).
        self._slot_holders: dict[str, str] = {}
        self._platforms: dict[str, datetime] = {}

    def keep_originals(self, originals: Sequence[KeptOriginal]) -> None:
        """Keep masked dead letters' originals, in this batch's transaction."""
        dead_letters.keep(self._conn, originals)

    def log_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Count the batch's dead letters (the monthly report), in its transaction."""
        dead_letters.log(self._conn, letters)

    def record_platforms(self, platforms: Mapping[str, datetime]) -> None:
        """Each publishing platform's newest event time, written by flush() in this batch's
        transaction, last: the rows every worker updates are locked until commit only."""
        self._platforms = dict(platforms)

    def known_sources(self, keys: Sequence[SourceKey]) -> dict[SourceKey, str | None]:
        """Source keys already recorded -> their order id (None for a suppressed signal)."""
        asked = {str(key): key for key in keys}
        known: dict[SourceKey, str | None] = {}
        for chunk in chunks(list(asked)):
            for stored, order_id in self._conn.execute(intake_queries.KNOWN_SOURCES, {"keys": chunk}).all():
                if order_id is None:  # suppressed: it made no order, whatever else says so
                    known[asked[stored]] = None
                else:
                    known.setdefault(asked[stored], order_id)
        return known

    def source_positions(self, keys: Sequence[SourceKey]) -> dict[SourceKey, tuple[str, str | None]]:
        """Source key -> (its order id, the topic/partition/offset it was recorded from)."""
        asked = {str(key): key for key in keys}
        found: dict[SourceKey, tuple[str, str | None]] = {}
        for chunk in chunks(list(asked)):
            for stored, order_id, position in self._conn.execute(
                intake_queries.SOURCE_POSITIONS, {"keys": chunk}
            ).all():
                found[asked[stored]] = (order_id, position)
        return found

    def orders(self, ids: Sequence[str]) -> list[WorkOrder]:
        """The stored orders of ``ids`` (those that exist)."""
        found: list[RowMapping] = []
        for chunk in chunks(list(ids)):
            found += self._conn.execute(intake_queries.ORDERS_OF, {"ids": chunk}).mappings().all()
        return with_sources(self._conn, found)

    def undispatched(self, ids: Sequence[str]) -> list[WorkOrder]:
        """Those of ``ids`` registered earlier but never published."""
        found: list[RowMapping] = []
        for chunk in chunks(list(ids)):
            found += self._conn.execute(intake_queries.UNDISPATCHED_OF, {"ids": chunk}).mappings().all()
        return with_sources(self._conn, found)

    def open_orders_by_dedupe_key(self, keys: Sequence[str]) -> dict[str, tuple[str, str, datetime]]:
        """Dedupe key -> (order id, unit, last seen) of its most recently seen open order.
        Also notes which order holds each key's slot: a new order for the key takes it over."""
        found: dict[str, tuple[str, str, datetime]] = {}
        for chunk in chunks(list(keys)):
            rows = self._conn.execute(intake_queries.OPEN_ORDERS_BY_DEDUPE_KEY, {"keys": chunk}).all()
            for order_id, unit, key, last_seen_at, status, slot in rows:
                if slot is not None:
                    self._slot_holders[slot] = order_id
                if status != WorkOrderStatus.closed.value:
                    found[key] = (order_id, unit, last_seen_at)
        return found

    def violations(self, keys: Sequence[str], since: datetime) -> dict[str, list[datetime]]:
        """Violation key -> when each earlier violation under it was recorded, since ``since``."""
        found: dict[str, list[datetime]] = {}
        for chunk in chunks(list(keys)):
            for key, at in self._conn.execute(
                intake_queries.VIOLATIONS, {"keys": chunk, "since": since}
            ).all():
                found.setdefault(key, []).append(at)
        return found

    def open_orders_by_subject(self, subjects: Sequence[str]) -> dict[str, list[str]]:
        """Plate or enterprise id -> ids of open orders about it, oldest first."""
        found: dict[str, list[str]] = {}
        for chunk in chunks(list(subjects)):
            wanted = set(chunk)
            rows = self._conn.execute(intake_queries.OPEN_ORDERS_BY_SUBJECT, {"subjects": chunk}).all()
            for order_id, plate, enterprise_id in rows:
                if plate in wanted:
                    found.setdefault(plate, []).append(order_id)
                if enterprise_id in wanted and enterprise_id != plate:
                    found.setdefault(enterprise_id, []).append(order_id)
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
        """Keep a signal as its order's evidence, with the row of the order's history it makes
        (``position``: the topic/partition/offset it was read from)."""
        self._sources.append(
            {
                "source_key": str(source),
                "work_order_id": order_id,
                "kind": source.kind.value,
                "received_at": self.now,
                "payload": payload,
                "position": position,
                "region_code": region_code,
            }
        )
        self._events.append(audit_trail.entry(order_id, self.now, event, detail))

    def add_orders(self, orders: Sequence[WorkOrder]) -> None:
        """The orders the batch registers, as they are once every signal of it is merged."""
        self._orders += orders

    def add_occurrences(self, merged: Mapping[str, Occurrences]) -> None:
        """Signals the batch merged into orders registered before it, by order id."""
        self._merges.update(merged)

    def suppress(self, source: SourceKey, record: dict[str, Any]) -> None:
        """Record a signal triage decided makes no order (other columns of suppressed_signal)."""
        self._suppressed.append({"source_key": str(source), **record, "received_at": self.now})

    def mark_dispatched(
        self, orders: Sequence[WorkOrder], first_checks: Mapping[str, datetime | None] | None = None
    ) -> None:
        """Record these orders as dispatched in this transaction (when the batch flushes), each
        with when the escalation tick first looks at it (not given: at once)."""
        self._dispatching.update(first_checks_of(orders, first_checks))

    def flush(self) -> None:
        """Write what the batch decided: one multi-row statement per table (orders first: the
        other rows refer to them), merges into earlier orders as one UPDATE per order."""
        self._insert_orders()
        if self._merges:
            _merge(self._conn, self._merges, self.now)
        insert_rows(self._conn, work_order_source, self._sources)
        audit_trail.append(self._conn, self._events)
        insert_rows(self._conn, suppressed_signal, self._suppressed)
        if self._dispatching:
            record_dispatched(self._conn, self._dispatching, self.now)
        platforms_seen.record(self._conn, self._platforms, self.now)
        self._orders, self._merges, self._dispatching, self._platforms = [], {}, {}, {}
        self._sources, self._events, self._suppressed = [], [], []

    def _insert_orders(self) -> None:
        """Insert the new orders; each key's last new order takes its slot from the holder
        this batch saw (an earlier one of the batch was superseded within it)."""
        slots: dict[str, str] = {}  # key -> the order that takes its slot (the last one wins)
        for order in self._orders:
            if order.dedupe_key is not None:
                slots[order.dedupe_key] = order.id
        free_slots(self._conn, self._slot_holders, list(slots))
        rows = [order_row(order, self.now) for order in self._orders]
        for row in rows:
            row["dedupe_slot"] = row["dedupe_key"] if slots.get(row["dedupe_key"]) == row["id"] else None
        # Slots in key order: two workers inserting the same keys wait for each other in one
        # order (in batch order they could deadlock).
        insert_rows(self._conn, work_order, sorted(rows, key=lambda row: row["dedupe_slot"] or ""))
        self._slot_holders.update(slots)


def _merge(conn: Connection, merges: dict[str, Occurrences], now: datetime) -> None:
    """Add signals merged into orders registered before the batch (sorted: concurrent workers
    lock the rows they update in the same order)."""
    ordered = sorted(merges.items())
    if conn.dialect.name != "postgresql":
        parameters = [_merge_parameters(order_id, merged, now) for order_id, merged in ordered]
        conn.execute(intake_queries.MERGE_INTO_ORDER, parameters)
        return
    refuse_naive([now, *(at for _, m in ordered for at in (m.first_seen_at, m.last_seen_at))])
    arrays = {
        "m_ids": [order_id for order_id, _ in ordered],
        "m_counts": [m.count for _, m in ordered],
        "m_firsts": [m.first_seen_at for _, m in ordered],
        "m_lasts": [m.last_seen_at for _, m in ordered],
    }
    conn.exec_driver_sql(intake_queries.MERGE_INTO_ORDERS_PG, {**arrays, "m_now": now})


def _merge_parameters(order_id: str, merged: Occurrences, now: datetime) -> dict[str, Any]:
    return {
        "m_id": order_id,
        "m_count": merged.count,
        "m_first": merged.first_seen_at,
        "m_last": merged.last_seen_at,
        "m_now": now,
    }
