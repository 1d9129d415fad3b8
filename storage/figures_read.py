"""What each order created in a period contributes to the figures (schemas.figures.OrderFacts),
read in one query: the orders with their events folded in SQL to what the figures need (returns,
extensions granted, the holder's acceptance and the latest callback), one tuple per order."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

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
    "due_at",
    "closed_at",
    "closed_on_time",
    "rework_count",
)
# Vocabularies looked up by value: a dict lookup is several times cheaper than Enum(value),
# and a month has a few hundred thousand orders.
_KINDS = {kind.value: kind for kind in SignalKind}
_PRIORITIES = {priority.value: priority for priority in Priority}
_STATUSES = {status.value: status for status in WorkOrderStatus}
_RESULTS = {result.value: result for result in CallbackResult}


class FigureFacts:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def order_facts(self, start: datetime, end: datetime) -> list[OrderFacts]:
        """One OrderFacts per order created in [start, end)."""
        cohort = sa.and_(work_order.c.created_at >= start, work_order.c.created_at < end)
        with self._engine.connect() as conn:
            rows = conn.execute(_orders(cohort)).all()  # fetchall: no per-row fetch
        return [_facts(row) for row in rows]


def _orders(cohort: sa.ColumnElement[bool]) -> sa.Select[Any]:
    """The cohort's orders, each with its events folded: returns, extensions granted, the
    acceptance of the unit holding it and its latest callback with a known result."""
    o, ev = work_order.c, work_order_event.c
    callback = ev.detail["callback"].as_string()
    reassigned = sa.select(ev.work_order_id).where(ev.type == E.reassigned.value)
    # Only the events that count go into the fold (a month has a million events): returns,
    # reassignments, grants, callbacks with a known result, and the acceptances of orders
    # ever reassigned (the others' is the order's own column).
    counted = sa.or_(
        ev.type.in_((E.returned.value, E.reassigned.value, *_GRANTED)),
        sa.and_(ev.type.in_(_CALLBACKS), callback.in_(list(_RESULTS))),
        sa.and_(ev.type == E.accepted.value, ev.work_order_id.in_(reassigned)),
    )
    folded = (
        sa.select(
            ev.work_order_id,
            _count(ev.type == E.returned.value).label("returns"),
            _count(ev.type.in_(_GRANTED)).label("grants"),
            _last(ev.type == E.reassigned.value).label("last_reassign"),
            _last(ev.type == E.accepted.value).label("last_accept"),
            _last(sa.and_(ev.type.in_(_CALLBACKS), callback.in_(list(_RESULTS)))).label("last_callback"),
        )
        .join(work_order, o.id == ev.work_order_id)
        .where(cohort, counted)
        .group_by(ev.work_order_id)
        .subquery()
    )
    f = folded.c
    accepted, called = work_order_event.alias("accepted"), work_order_event.alias("called")
    # The acceptance clock restarts on reassignment: the holder's own acceptance is the latest
    # one recorded after the last reassignment (the column keeps the first unit's).
    holder_accepted = sa.case(
        (f.last_reassign.is_(None), o.accepted_at),
        (f.last_accept > f.last_reassign, accepted.c.at),
        else_=sa.null(),
    )
    return (
        sa.select(
            *(getattr(o, name) for name in _COLUMNS),
            holder_accepted.label("accepted_at"),
            called.c.detail["callback"].as_string().label("callback"),
            f.returns,
            f.grants,
        )
        .select_from(work_order)
        .outerjoin(folded, f.work_order_id == o.id)
        .outerjoin(accepted, accepted.c.id == f.last_accept)
        .outerjoin(called, called.c.id == f.last_callback)
        .where(cohort)
    )


def _count(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _last(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int | None]:
    """The id of the order's latest event meeting ``condition`` (ids grow with time)."""
    return sa.func.max(sa.case((condition, work_order_event.c.id)))


def _facts(row: Sequence[Any]) -> OrderFacts:
    (
        order_id,
        unit,
        kind,
        priority,
        status_value,
        created_at,
        accept_due_at,
        due_at,
        closed_at,
        closed_on_time,
        rework_count,
        accepted_at,
        callback,
        returns,
        grants,
    ) = row
    status = _STATUSES[status_value]
    closed = status is WorkOrderStatus.closed
    return OrderFacts(
        id=order_id,
        unit=unit,
        kind=_KINDS[kind],
        priority=_PRIORITIES[priority],
        status=status,
        created_at=created_at,
        accept_due_at=accept_due_at,
        accepted_at=accepted_at,
        due_at=due_at,
        closed_at=closed_at if closed else None,
        closed_on_time=closed_on_time if closed else None,
        callback=None if callback is None else _RESULTS[callback],
        rework_count=int(rework_count),
        returns=int(returns or 0),
        extended=bool(grants),
    )
