"""Orders' clocks: which orders the escalation tick must look at (their next check came)
and when next, and the escalations recorded (each once) until they are published."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from workorder_pipeline.schemas.commands import EscalationLevel
from workorder_pipeline.schemas.workorder import PipelineEventName, WorkOrderStatus
from workorder_pipeline.storage import audit_trail
from workorder_pipeline.storage.bulk import chunks, refuse_naive
from workorder_pipeline.storage.tables import UtcDateTime, clock_review, escalation, work_order

#: The columns the tick's clocks are computed from (processors/next_check.OrderClocks), and
#: the rework count (提级督办).
CLOCK_COLUMNS = tuple(
    work_order.c[name]
    for name in (
        "id",
        "unit",
        "priority",
        "status",
        "created_at",
        "due_at",
        "accept_due_at",
        "returned_at",
        "rework_count",
    )
)
_CLOCK_NAMES = tuple(column.name for column in CLOCK_COLUMNS)
_SET_NEXT_CHECK = (
    sa.update(work_order)
    .where(
        *(
            # NULL-able columns compare with IS NOT DISTINCT FROM; the rest with = (the id's
            # index needs it).
            (column.is_not_distinct_from if column.nullable else column.__eq__)(
                sa.bindparam(f"n_{column.name}", type_=column.type)
            )
            for column in CLOCK_COLUMNS
        )
    )
    .values(next_check_at=sa.bindparam("n_next", type_=UtcDateTime()))
)


def _pg_type(column: sa.Column[Any]) -> str:
    return str(column.type.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]


def _set_next_checks_pg() -> str:
    """The same for PostgreSQL, every order of a chunk in one statement (one array per column):
    one UPDATE per order was a statement executed per order, thousands a tick, holding their
    rows locked against the intake's merges meanwhile. Rows are locked in id order first, as
    intake and command batches lock them."""
    names = [*_CLOCK_NAMES, "next"]
    arrays = ", ".join(f"%(n_{column.name})s::{_pg_type(column)}[]" for column in CLOCK_COLUMNS)
    matches = " AND ".join(
        f"work_order.{column.name} {'IS NOT DISTINCT FROM' if column.nullable else '='} v.{column.name}"
        for column in CLOCK_COLUMNS
    )
    return f"""
UPDATE work_order SET next_check_at = v.next
FROM unnest({arrays}, %(n_next)s::timestamptz[]) AS v({", ".join(names)})
WHERE {matches}
  AND work_order.id IN (
    SELECT id FROM work_order WHERE id = ANY(%(n_id)s::varchar[]) ORDER BY id FOR UPDATE
  )
"""


SET_NEXT_CHECKS_PG = _set_next_checks_pg()


class EscalationStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def orders_to_check(
        self, now: datetime, every_open: bool = False, chunk: int = 5000
    ) -> Iterator[list[dict[str, Any]]]:
        """The orders the escalation tick must look at, ``chunk`` at a time (by id): those whose
        ``next_check_at`` has come (a clock of theirs came due, or they changed since last
        looked at), through its partial index; with ``every_open``, every order not closed
        (the first tick of a process: the policy or the calendar may have changed)."""
        c = work_order.c
        wanted = c.status != WorkOrderStatus.closed.value if every_open else c.next_check_at <= now
        after = ""
        while True:
            with self._engine.connect() as conn:
                rows = [
                    dict(row)
                    for row in conn.execute(
                        sa.select(*CLOCK_COLUMNS, c.next_check_at)
                        .where(wanted, c.id > after)
                        .order_by(c.id)
                        .limit(chunk)
                    ).mappings()
                ]
            if not rows:
                return
            yield rows
            after = rows[-1]["id"]

    def set_next_checks(self, checks: Sequence[tuple[Mapping[str, Any], datetime | None]]) -> None:
        """Store each order's next check, unless its clocks changed since it was read (a
        command in between: it asked for a check of its own, which must stay). In id order,
        as intake and command batches lock orders, so none of them deadlocks with the tick."""
        params = [
            {"n_next": at, **{f"n_{name}": row[name] for name in _CLOCK_NAMES}}
            for row, at in sorted(checks, key=lambda check: str(check[0]["id"]))
            if at != row["next_check_at"]
        ]
        if not params:
            return
        with self._engine.begin() as conn:
            if conn.dialect.name != "postgresql":
                conn.execute(_SET_NEXT_CHECK, params)
                return
            arrays = {name: [row[name] for row in params] for name in params[0]}
            refuse_naive(at for values in arrays.values() for at in values if isinstance(at, datetime))
            conn.exec_driver_sql(SET_NEXT_CHECKS_PG, arrays)

    def record_escalations(self, rows: Sequence[dict[str, Any]], now: datetime) -> int:
        """Insert escalations not yet recorded (one per order, level and due_at); the new ones
        also go into their orders' audit trail. Returns how many were new."""
        if not rows:
            return 0
        new = 0
        with self._engine.begin() as conn:
            recorded = _recorded(conn, rows)
            for row in rows:
                if (row["work_order_id"], row["level"], row["due_at"]) not in recorded:
                    new += record_escalation(conn, row, now)
        return new

    def reviewed_clock_rules(self) -> str | None:
        """The digest of the clock rules the last complete review of every open order was
        made by (None: never reviewed, or before migration 0032)."""
        with self._engine.connect() as conn:
            return conn.execute(sa.select(clock_review.c.digest).where(clock_review.c.id == 1)).scalar()

    def record_clock_review(self, digest: str, now: datetime) -> None:
        """Every open order's next check now follows the rules of ``digest``."""
        with self._engine.begin() as conn:
            conn.execute(
                sa.update(clock_review).where(clock_review.c.id == 1).values(digest=digest, reviewed_at=now)
            )

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


def record_escalation(conn: Connection, row: dict[str, Any], now: datetime) -> bool:
    """Insert one escalation (work_order_id, level, due_at, unit) and its entry in the order's
    history, in the caller's transaction; False when it was recorded already."""
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    inserted = conn.execute(
        dialect_insert(escalation)
        .values(**row, fired_at=now, published_at=None)
        .on_conflict_do_nothing(index_elements=["work_order_id", "level", "due_at"])
        .returning(escalation.c.id)
    ).first()
    if inserted is None:
        return False
    reminder = row["level"] == EscalationLevel.reminder
    detail = {
        "level": row["level"],
        "recipient": row["unit"] if reminder else None,
        "escalation_id": inserted.id,
    }
    name = PipelineEventName.reminder_sent if reminder else PipelineEventName.escalated
    audit_trail.append(conn, [audit_trail.entry(row["work_order_id"], now, name, detail)])
    return True


def escalated_before(conn: Connection, order_id: str, level: EscalationLevel) -> bool:
    """Whether the order was escalated at ``level`` already, about any deadline."""
    c = escalation.c
    found = conn.execute(
        sa.select(c.id).where(c.work_order_id == order_id, c.level == level.value).limit(1)
    ).first()
    return found is not None


def _recorded(conn: Connection, rows: Sequence[dict[str, Any]]) -> set[tuple[str, str, datetime]]:
    """(order, level, due_at) of ``rows`` recorded already. Most are (an overdue order is a
    candidate at every check): one read skips them, instead of one refused INSERT each."""
    recorded: set[tuple[str, str, datetime]] = set()
    c = escalation.c
    for chunk in chunks(sorted({row["work_order_id"] for row in rows})):
        recorded.update(
            (r.work_order_id, r.level, r.due_at)
            for r in conn.execute(
                sa.select(c.work_order_id, c.level, c.due_at).where(c.work_order_id.in_(chunk))
            )
        )
    return recorded
