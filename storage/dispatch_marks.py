"""Which orders reached their squads: ``work_order.dispatched_at`` and the ``dispatched`` row
of each order's history."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from workorder_pipeline.schemas.workorder import PIPELINE_ACTOR, PipelineEventName, WorkOrder, WorkOrderStatus
from workorder_pipeline.storage import audit_trail
from workorder_pipeline.storage.one_of import one_of
from workorder_pipeline.storage.order_rows import with_sources
from workorder_pipeline.storage.tables import work_order, work_order_event

_c = work_order.c

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
        next_check_at=_c.created_at,  # its clocks changed: the escalation tick looks again
    )
    .returning(_c.id, _c.unit)
)

# PostgreSQL: the mark and its history rows in one statement (one round trip, no rows back).
_marked = _MARK_DISPATCHED.cte("marked")
_MARK_DISPATCHED_AND_LOG = sa.insert(work_order_event).from_select(
    ["work_order_id", "at", "type", "actor", "detail"],
    sa.select(
        _marked.c.id,
        sa.bindparam("now", type_=work_order_event.c.at.type),
        sa.literal(PipelineEventName.dispatched.value),
        sa.literal(PIPELINE_ACTOR),
        sa.func.jsonb_build_object("unit", _marked.c.unit),
    ).order_by(_marked.c.id),
)


def record_dispatched(conn: Connection, ids: list[str], now: datetime) -> None:
    """Mark ``ids`` dispatched (those not marked yet) with one ``dispatched`` event each."""
    if conn.dialect.name == "postgresql":
        conn.execute(_MARK_DISPATCHED_AND_LOG, {"ids": ids, "now": now})
        return
    newly = conn.execute(_MARK_DISPATCHED, {"ids": ids, "now": now}).all()
    entries = [
        audit_trail.entry(row.id, now, PipelineEventName.dispatched, {"unit": row.unit}) for row in newly
    ]
    audit_trail.append(conn, entries)


class DispatchMarks:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def mark_dispatched(self, orders: Sequence[WorkOrder], now: datetime) -> None:
        """Record that these orders were published to their squads (once per order)."""
        if not orders:
            return
        with self._engine.begin() as conn:
            record_dispatched(conn, [order.id for order in orders], now)

    def undispatched(self, limit: int = 1000) -> list[WorkOrder]:
        """Registered orders not yet published (e.g. the worker died between the two steps)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(work_order)
                .where(work_order.c.dispatched_at.is_(None))
                .order_by(work_order.c.created_at)
                .limit(limit)
            ).mappings()
            return with_sources(conn, list(rows))
