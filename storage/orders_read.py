"""Reads of work orders, their history, their signals and the commands decided about them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from workorder_pipeline.schemas.inbound import Channel
from workorder_pipeline.schemas.records import OrderPage, OrderQuery
from workorder_pipeline.schemas.signal import SignalKind, SourceKey
from workorder_pipeline.schemas.workorder import Priority, WorkOrder, WorkOrderStatus
from workorder_pipeline.storage.order_rows import with_sources
from workorder_pipeline.storage.tables import (
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
        """Orders matching every filter given, newest first (see ``page``)."""
        query = OrderQuery(
            unit=unit,
            visible_to=visible_to,
            status=WorkOrderStatus(status) if status else None,
            kind=SignalKind(kind) if kind else None,
            priority=Priority(priority) if priority else None,
            overdue=overdue,
            created_from=created_from,
            created_to=created_to,
            limit=limit,
            offset=offset,
            statuses=tuple(WorkOrderStatus(value) for value in statuses),
            search=search,
            extension_pending=extension_pending,
            ids=tuple(ids) if ids is not None else None,
        )
        return self.page(query, now, counted=False).orders

    def page(self, query: OrderQuery, now: datetime, counted: bool = True) -> OrderPage:
        """One page of the orders matching every filter of ``query``, newest first, and how
        many match in all (-1 when not ``counted``). Overdue: open and past due_at.
        ``visible_to``: the unit's own orders and those copied to it."""
        where = self._conditions(query, now)
        listed = (
            sa.select(work_order)
            .where(*where)
            .order_by(work_order.c.created_at.desc(), work_order.c.id)
            .limit(query.limit)
            .offset(query.offset)
        )
        with self._engine.connect() as conn:
            orders = with_sources(conn, list(conn.execute(listed).mappings()))
            total = -1
            if counted:
                counting = sa.select(sa.func.count()).select_from(work_order).where(*where)
                total = int(conn.execute(counting).scalar_one())
        return OrderPage(orders, total)

    def _conditions(self, query: OrderQuery, now: datetime) -> list[sa.ColumnElement[bool]]:
        c = work_order.c
        where: list[sa.ColumnElement[bool]] = []
        if query.visible_to is not None:
            find = sa.func.strpos if self._engine.dialect.name == "postgresql" else sa.func.instr
            copied = find("," + c.copied_to + ",", f",{query.visible_to},") > 0
            where.append(sa.or_(c.unit == query.visible_to, copied))
        equal = (
            (c.unit, query.unit),
            (c.status, query.status),
            (c.kind, query.kind),
            (c.priority, query.priority),
            (c.category, query.category),
            (c.plate, query.plate),
            (c.enterprise_id, query.enterprise_id),
        )
        where += [column == str(value) for column, value in equal if value is not None]
        if query.overdue is not None:
            # A returned order's clock is stopped (see storage/order_gauges.py): never overdue.
            running = c.status.notin_([WorkOrderStatus.closed.value, WorkOrderStatus.returned.value])
            late = sa.and_(running, c.due_at < now)
            where.append(late if query.overdue else sa.not_(late))
        if query.statuses:
            where.append(c.status.in_([status.value for status in query.statuses]))
        if query.extension_pending is not None:
            pending = sa.or_(c.pending_extension_days.is_not(None), c.pending_extension_hours.is_not(None))
            where.append(pending if query.extension_pending else sa.not_(pending))
        if query.search:
            where.append(_found_by(query.search))
        if query.ids is not None:
            where.append(c.id.in_(list(query.ids)))
        bounds = (
            (c.created_at, query.created_from, query.created_to),
            (c.closed_at, query.closed_from, query.closed_to),
        )
        for column, start, end in bounds:
            if start is not None:
                where.append(column >= start)
            if end is not None:
                where.append(column < end)
        return where

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
