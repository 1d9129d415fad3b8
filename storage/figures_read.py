"""What each order created in a period contributes to the figures (schemas.figures.OrderFacts),
read in two queries: the orders with their counted events, then the few events whose time or
detail matters (acceptances, closures and reopenings with their callback)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from workorder_pipeline.schemas.commands import CallbackResult, LifecycleEventName
from workorder_pipeline.schemas.figures import OrderFacts
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import Priority, WorkOrderStatus
from workorder_pipeline.storage.tables import work_order, work_order_event

E = LifecycleEventName
_GRANTED = (E.extension_approved.value, E.extended.value)
_CALLBACKS = (E.closed.value, E.reopened.value)
#: Of the order's own row, what the figures need (not its text, subject or sources).
_COLUMNS = (
    "id",
    "unit",
    "kind",
    "priority",
    "status",
    "created_at",
    "accept_due_at",
    "accepted_at",
    "due_at",
    "closed_at",
    "closed_on_time",
    "rework_count",
)


class FigureFacts:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def order_facts(self, start: datetime, end: datetime) -> list[OrderFacts]:
        """One OrderFacts per order created in [start, end)."""
        cohort = sa.and_(work_order.c.created_at >= start, work_order.c.created_at < end)
        with self._engine.connect() as conn:
            rows = list(conn.execute(_orders(cohort)).mappings())
            events: dict[str, list[RowMapping]] = {}
            for event in conn.execute(_events(cohort)).mappings():
                events.setdefault(event["work_order_id"], []).append(event)
        return [_facts(row, events.get(row["id"], ())) for row in rows]


def _orders(cohort: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """The cohort's orders with their returns, extensions granted and last reassignment."""
    o, ev = work_order.c, work_order_event.c
    counted = (
        sa.select(
            ev.work_order_id,
            _count(ev.type == E.returned.value).label("returns"),
            _count(ev.type.in_(_GRANTED)).label("grants"),
            sa.func.max(sa.case((ev.type == E.reassigned.value, ev.id))).label("last_reassign"),
        )
        .join(work_order, o.id == ev.work_order_id)
        .where(cohort, ev.type.in_((E.returned.value, E.reassigned.value, *_GRANTED)))
        .group_by(ev.work_order_id)
        .subquery()
    )
    return (
        sa.select(
            *(getattr(o, name) for name in _COLUMNS),
            counted.c.returns,
            counted.c.grants,
            counted.c.last_reassign,
        )
        .outerjoin_from(work_order, counted, counted.c.work_order_id == o.id)
        .where(cohort)
    )


def _events(cohort: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """The events whose detail or time matters, oldest first: callbacks (closures and
    unsatisfied reopenings), and the acceptances of reassigned orders."""
    o, ev = work_order.c, work_order_event.c
    callback = ev.detail["callback"].as_string()
    reassigned = sa.select(ev.work_order_id).where(ev.type == E.reassigned.value)
    return (
        sa.select(ev.work_order_id, ev.id, ev.type, ev.at, callback.label("callback"))
        .join(work_order, o.id == ev.work_order_id)
        .where(
            cohort,
            sa.or_(
                sa.and_(ev.type.in_(_CALLBACKS), callback.is_not(None)),
                sa.and_(ev.type == E.accepted.value, ev.work_order_id.in_(reassigned)),
            ),
        )
        .order_by(ev.work_order_id, ev.id)
    )


def _count(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _facts(row: RowMapping, events: Iterable[RowMapping]) -> OrderFacts:
    last_reassign = row["last_reassign"]
    # The acceptance clock restarts on reassignment: the holder's own acceptance is the one
    # recorded after the last reassignment (the column keeps the first unit's).
    accepted_at = row["accepted_at"] if last_reassign is None else None
    callback: CallbackResult | None = None
    for event in events:  # oldest first
        if event["type"] == E.accepted.value and last_reassign is not None and event["id"] > last_reassign:
            accepted_at = event["at"]
        elif event["callback"] is not None and event["callback"] in CallbackResult.__members__:
            callback = CallbackResult(event["callback"])
    status = WorkOrderStatus(row["status"])
    closed = status is WorkOrderStatus.closed
    return OrderFacts(
        id=row["id"],
        unit=row["unit"],
        kind=SignalKind(row["kind"]),
        priority=Priority(row["priority"]),
        status=status,
        created_at=row["created_at"],
        accept_due_at=row["accept_due_at"],
        accepted_at=accepted_at,
        due_at=row["due_at"],
        closed_at=row["closed_at"] if closed else None,
        closed_on_time=row["closed_on_time"] if closed else None,
        callback=callback,
        rework_count=int(row["rework_count"]),
        returns=int(row["returns"] or 0),
        extended=bool(row["grants"]),
    )
