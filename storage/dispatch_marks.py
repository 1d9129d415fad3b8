"""Which orders reached their squads: ``work_order.dispatched_at`` and the ``dispatched`` row
of each order's history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from workorder_pipeline.schemas.workorder import PIPELINE_ACTOR, PipelineEventName, WorkOrder, WorkOrderStatus
from workorder_pipeline.storage import audit_trail
from workorder_pipeline.storage.bulk import refuse_naive
from workorder_pipeline.storage.one_of import one_of
from workorder_pipeline.storage.order_rows import with_sources
from workorder_pipeline.storage.tables import work_order

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
        next_check_at=_c.created_at,  # until its first check is set (SQLite: the statement after)
    )
    .returning(_c.id, _c.unit)
)

# PostgreSQL: the mark, each order's first check and the history rows in one statement (one
# round trip, no rows back); rows locked in id order as above.
_MARK_DISPATCHED_AND_LOG_PG = f"""
WITH marked AS (
    UPDATE work_order SET status = '{WorkOrderStatus.dispatched.value}', dispatched_at = %(now)s,
        updated_at = %(now)s, next_check_at = v.first_check
    FROM unnest(%(ids)s::varchar[], %(first_checks)s::timestamptz[]) AS v(id, first_check)
    WHERE work_order.id = v.id AND work_order.id IN (
        SELECT id FROM work_order WHERE id = ANY(%(ids)s::varchar[]) AND dispatched_at IS NULL
        ORDER BY id FOR UPDATE
    )
    RETURNING work_order.id, work_order.unit
)
INSERT INTO work_order_event (work_order_id, at, type, actor, detail)
SELECT id, %(now)s, '{PipelineEventName.dispatched.value}', '{PIPELINE_ACTOR}',
    jsonb_build_object('unit', unit)
FROM marked ORDER BY id
"""
_SET_FIRST_CHECK = (
    sa.update(work_order)
    .where(_c.id == sa.bindparam("c_id"))
    .values(next_check_at=sa.bindparam("c_first_check", type_=work_order.c.next_check_at.type))
)


def record_dispatched(conn: Connection, first_checks: Mapping[str, datetime | None], now: datetime) -> None:
    """Mark dispatched the orders of ``first_checks`` not marked yet, each with when the
    escalation tick first looks at it, and one ``dispatched`` event each."""
    ids = sorted(first_checks)
    if conn.dialect.name == "postgresql":
        checks = [first_checks[order_id] for order_id in ids]
        try:
            refuse_naive([now, *checks])
        except ValueError as naive:  # raised as SQLAlchemy raises the stored times' refusal
            raise sa.exc.StatementError(str(naive), _MARK_DISPATCHED_AND_LOG_PG, None, naive) from naive
        conn.exec_driver_sql(_MARK_DISPATCHED_AND_LOG_PG, {"ids": ids, "first_checks": checks, "now": now})
        return
    newly = conn.execute(_MARK_DISPATCHED, {"ids": ids, "now": now}).all()
    if newly:
        conn.execute(
            _SET_FIRST_CHECK, [{"c_id": row.id, "c_first_check": first_checks[row.id]} for row in newly]
        )
    entries = [
        audit_trail.entry(row.id, now, PipelineEventName.dispatched, {"unit": row.unit}) for row in newly
    ]
    audit_trail.append(conn, entries)


def first_checks_of(
    orders: Sequence[WorkOrder], first_checks: Mapping[str, datetime | None] | None
) -> dict[str, datetime | None]:
    """Each order's first check: as given, or at once (its creation) when not given."""
    given = first_checks or {}
    return {order.id: given.get(order.id, order.created_at) for order in orders}


class DispatchMarks:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def mark_dispatched(
        self,
        orders: Sequence[WorkOrder],
        now: datetime,
        first_checks: Mapping[str, datetime | None] | None = None,
    ) -> None:
        """Record that these orders were published to their squads (once per order), each
        with when the escalation tick first looks at it (not given: at once)."""
        if not orders:
            return
        with self._engine.begin() as conn:
            record_dispatched(conn, first_checks_of(orders, first_checks), now)

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
