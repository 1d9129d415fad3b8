"""Running orders' clocks: which orders are due a reminder or an escalation, and the
escalations recorded (each once) until they are published."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine, RowMapping

from schemas.commands import EscalationLevel
from schemas.workorder import PipelineEventName, WorkOrderStatus
from storage import audit_trail
from storage.bulk import chunks
from storage.tables import UtcDateTime, escalation, work_order


class EscalationStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

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
        s = WorkOrderStatus
        running = [s.dispatched.value, s.accepted.value, s.in_progress.value, s.feedback_submitted.value]
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
            recorded = _recorded(conn, rows)
            for row in rows:
                if (row["work_order_id"], row["level"], row["due_at"]) not in recorded:
                    new += record_escalation(conn, row, now)
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
