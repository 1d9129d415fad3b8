"""Reads of work orders, their history, their signals and the commands decided about them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from schemas.inbound import Channel
from schemas.signal import SignalKind, SourceKey
from schemas.workorder import WorkOrder, WorkOrderStatus
from storage.order_rows import with_sources
from storage.tables import (
    processed_command,
    suppressed_signal,
    work_order,
    work_order_event,
    work_order_source,
)


def _found_by(term: str) -> sa.ColumnElement[bool]:
    """An order id, plate, enterprise id or signal id (ticket) exactly; a part of a name."""
    c = work_order.c
    term = term.strip()
    keys = [str(SourceKey(kind, term)) for kind in SignalKind]
    # A complaint's signal id is channel/ticket (processors/signals.py): a bare ticket finds it.
    keys += [str(SourceKey(SignalKind.complaint, f"{channel.value}/{term}")) for channel in Channel]
    by_signal = sa.select(work_order_source.c.work_order_id).where(work_order_source.c.source_key.in_(keys))
    pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return sa.or_(
        c.id == term,
        c.plate == term.upper(),
        c.enterprise_id == term.upper(),
        c.enterprise_name.like(pattern, escape="\\"),
        c.id.in_(by_signal),
    )


class OrderReads:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def get(self, order_id: str) -> WorkOrder | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(work_order).where(work_order.c.id == order_id)).mappings().first()
            return with_sources(conn, [row])[0] if row else None

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
        statuses: Sequence[str] = (),
        search: str | None = None,
        extension_pending: bool | None = None,
        ids: Sequence[str] | None = None,
    ) -> list[WorkOrder]:
        """Orders matching every filter given, newest first. Overdue: open and past due_at.
        ``visible_to``: the unit's own orders and those copied to it. ``search``: see
        schemas.records.OrderQuery."""
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
        if statuses:
            query = query.where(c.status.in_(list(statuses)))
        if overdue is not None:
            # A returned order's clock is stopped (see storage/order_gauges.py): never overdue.
            running = c.status.notin_([WorkOrderStatus.closed.value, WorkOrderStatus.returned.value])
            late = sa.and_(running, c.due_at < now)
            query = query.where(late if overdue else sa.not_(late))
        if extension_pending is not None:
            pending = sa.or_(c.pending_extension_days.is_not(None), c.pending_extension_hours.is_not(None))
            query = query.where(pending if extension_pending else sa.not_(pending))
        if created_from is not None:
            query = query.where(c.created_at >= created_from)
        if created_to is not None:
            query = query.where(c.created_at < created_to)
        if search:
            query = query.where(_found_by(search))
        if ids is not None:
            query = query.where(c.id.in_(list(ids)))
        query = query.order_by(c.created_at.desc(), c.id).limit(limit).offset(offset)
        with self._engine.connect() as conn:
            return with_sources(conn, list(conn.execute(query).mappings()))

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
