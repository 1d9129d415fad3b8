"""The statements of an intake batch: one each, whatever the batch's size (a statement costs
~0.3 ms per batch whatever its rows)."""

from __future__ import annotations

import sqlalchemy as sa

from workorder_pipeline.schemas.workorder import WorkOrderStatus
from workorder_pipeline.storage.one_of import one_of
from workorder_pipeline.storage.tables import UtcDateTime, suppressed_signal, work_order, work_order_source

_c = work_order.c

_OPEN = _c.status != WorkOrderStatus.closed.value

#: Publisher ids already recorded as an order's source or as suppressed (order id NULL).
KNOWN_SOURCES = sa.union_all(
    sa.select(work_order_source.c.source_key, work_order_source.c.work_order_id).where(
        one_of(work_order_source.c.source_key, "keys")
    ),
    sa.select(suppressed_signal.c.source_key, sa.null().label("work_order_id")).where(
        one_of(suppressed_signal.c.source_key, "keys")
    ),
)
#: Open orders, and a closed order still holding a slot (written by hand, or restored):
#: taken over like any other holder, never merged into.
OPEN_ORDERS_BY_DEDUPE_KEY = (
    sa.select(_c.id, _c.unit, _c.dedupe_key, _c.last_seen_at, _c.status, _c.dedupe_slot)
    .where(one_of(_c.dedupe_key, "keys"), sa.or_(_OPEN, _c.dedupe_slot.is_not(None)))
    .order_by(_c.last_seen_at)
)
VIOLATIONS = sa.union_all(
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
OPEN_ORDERS_BY_SUBJECT = (
    sa.select(_c.id, _c.plate, _c.enterprise_id)
    .where(_OPEN, sa.or_(one_of(_c.plate, "subjects"), one_of(_c.enterprise_id, "subjects")))
    .order_by(_c.created_at, _c.id)
)
UNDISPATCHED_OF = sa.select(work_order).where(one_of(_c.id, "ids"), _c.dispatched_at.is_(None))
ORDERS_OF = sa.select(work_order).where(one_of(_c.id, "ids"))
SOURCE_POSITIONS = sa.select(
    work_order_source.c.source_key, work_order_source.c.work_order_id, work_order_source.c.position
).where(one_of(work_order_source.c.source_key, "keys"))

#: Signals merged into an order registered before the batch (processors.merging's
#: arithmetic, done by the database: another batch may be merging into the order too).
MERGE_INTO_ORDER = (
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

#: The same for PostgreSQL, every merge of a batch in one statement (one array per column):
#: no parameter set per order to build and send. The rows are locked in id order first, as
#: one UPDATE per order in sorted order locked them (and as the dispatched mark locks them).
MERGE_INTO_ORDERS_PG = """
UPDATE work_order SET
    occurrences = work_order.occurrences + m.m_count,
    last_seen_at = CASE WHEN work_order.last_seen_at < m.m_last THEN m.m_last
                   ELSE work_order.last_seen_at END,
    first_seen_at = CASE WHEN work_order.first_seen_at > m.m_first THEN m.m_first
                    ELSE work_order.first_seen_at END,
    updated_at = %(m_now)s
FROM unnest(%(m_ids)s::varchar[], %(m_counts)s::int4[], %(m_firsts)s::timestamptz[],
            %(m_lasts)s::timestamptz[]) AS m(m_id, m_count, m_first, m_last)
WHERE work_order.id = m.m_id
  AND work_order.id IN (
    SELECT id FROM work_order WHERE id = ANY(%(m_ids)s::varchar[]) ORDER BY id FOR UPDATE
  )
"""
