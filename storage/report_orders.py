"""The monthly report's reads of orders, returns and escalations (services/report.py): grouped
in the database, the top of each list only. Windows are half-open [start, end) in UTC."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from workorder_pipeline.schemas.commands import EscalationLevel, LifecycleEventName
from workorder_pipeline.schemas.workorder import WorkOrderStatus
from workorder_pipeline.storage.report_inflow import Window
from workorder_pipeline.storage.tables import escalation, work_order, work_order_event, work_order_source

o = work_order.c
_IN_MONTH = (o.created_at >= sa.bindparam("start"), o.created_at < sa.bindparam("end"))
_RETURNED = LifecycleEventName.returned.value
# Not a correlated EXISTS: PostgreSQL ran that once per order (200,000 index probes, and a
# cost high enough to JIT-compile the query); a set of the returned orders is hashed once.
_EVER_RETURNED = o.id.in_(
    sa.select(work_order_event.c.work_order_id).where(work_order_event.c.type == _RETURNED)
)


def _bounds(window: Window) -> dict[str, datetime]:
    return {"start": window[0], "end": window[1]}


def recurring(conn: Connection, subject: str, window: Window, top: int) -> list[dict[str, Any]]:
    """The ``top`` plates or enterprises (``subject``: "plate" or "enterprise_id") with the
    most orders created in the window: per kind, with outcomes (one row per subject and kind)."""
    key = o[subject]
    leaders = (
        sa.select(key)
        .where(*_IN_MONTH, key.is_not(None))
        .group_by(key)
        .order_by(sa.func.count().desc(), key)
        .limit(top)
    )
    keys = [row[0] for row in conn.execute(leaders, _bounds(window))]
    if not keys:
        return []
    closed = sa.func.sum(sa.case((o.status == WorkOrderStatus.closed.value, 1), else_=0))
    returned = sa.func.sum(sa.case((_EVER_RETURNED, 1), else_=0))
    detail = (
        sa.select(
            key.label("key"),
            sa.func.max(o.enterprise_name).label("name"),
            o.kind,
            sa.func.count().label("orders"),
            closed.label("closed"),
            returned.label("returned"),
        )
        .where(*_IN_MONTH, key.in_(keys))
        .group_by(key, o.kind)
    )
    rows = [dict(row) for row in conn.execute(detail, _bounds(window)).mappings()]
    rank = {k: i for i, k in enumerate(keys)}
    return sorted(rows, key=lambda row: (rank[row["key"]], row["kind"]))


def categories_by_place(conn: Connection, window: Window, top: int) -> list[dict[str, Any]]:
    """Complaint orders by category, region and place, the most frequent first."""
    region, place = sa.func.coalesce(o.region_code, ""), sa.func.coalesce(o.place, "")
    query = (
        sa.select(
            o.category, region.label("region_code"), place.label("place"), sa.func.count().label("count")
        )
        .where(*_IN_MONTH, o.category.is_not(None))
        .group_by(o.category, region, place)
        .order_by(sa.func.count().desc(), o.category, region, place)
        .limit(top)
    )
    return [dict(row) for row in conn.execute(query, _bounds(window)).mappings()]


def repeated_checkin_failures(conn: Connection, window: Window, at_least: int) -> list[dict[str, Any]]:
    """Enterprises with ``at_least`` check-in failure signals received in the window."""
    s = work_order_source.c
    query = (
        sa.select(
            o.enterprise_id,
            sa.func.max(o.enterprise_name).label("name"),
            sa.func.count().label("failures"),
            sa.func.count(sa.distinct(o.id)).label("orders"),
        )
        .select_from(work_order_source.join(work_order, o.id == s.work_order_id))
        .where(s.kind == "checkin_failure", s.received_at >= window[0], s.received_at < window[1])
        .where(o.enterprise_id.is_not(None))
        .group_by(o.enterprise_id)
        .having(sa.func.count() >= at_least)
        .order_by(sa.func.count().desc(), o.enterprise_id)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def returns(conn: Connection, window: Window) -> list[dict[str, Any]]:
    """Returns made in the window: (reason, route_key, the unit that returned it, count)."""
    e = work_order_event.c
    reason = e.detail["reason"].as_string()
    returned_by = e.detail["returned_by"].as_string()
    query = (
        sa.select(
            reason.label("reason"),
            o.route_key,
            returned_by.label("unit"),
            sa.func.count().label("n"),
        )
        .select_from(work_order_event.join(work_order, o.id == e.work_order_id))
        .where(e.type == _RETURNED, e.at >= window[0], e.at < window[1])
        .group_by(reason, o.route_key, returned_by)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def orders_by_route(conn: Connection, window: Window) -> dict[str, int]:
    query = sa.select(o.route_key, sa.func.count()).where(*_IN_MONTH).group_by(o.route_key)
    return {key: int(n) for key, n in conn.execute(query, _bounds(window))}


def clocks(conn: Connection, window: Window) -> list[tuple[str, datetime, datetime | None, datetime | None]]:
    """(unit, created, accepted, closed) of the orders created in the window: three columns
    of each, so a month of 200,000 orders stays a few megabytes."""
    query = sa.select(o.unit, o.created_at, o.accepted_at, o.closed_at).where(*_IN_MONTH)
    rows = conn.execute(query, _bounds(window)).all()  # fetchall: no per-row fetch
    return [(row[0], row[1], row[2], row[3]) for row in rows]


def _overdue_condition(window: Window) -> sa.ColumnElement[bool]:
    """Due in the window and not closed by then (closed late, or still open)."""
    late = sa.or_(o.closed_at.is_(None), o.closed_at > o.due_at)
    return sa.and_(o.due_at >= window[0], o.due_at < window[1], late)


def overdue(conn: Connection, window: Window, top: int) -> tuple[list[dict[str, Any]], int]:
    where = _overdue_condition(window)
    listed = (
        sa.select(o.id, o.unit, o.kind, o.due_at, o.status).where(where).order_by(o.due_at, o.id).limit(top)
    )
    total = conn.execute(sa.select(sa.func.count()).select_from(work_order).where(where)).scalar_one()
    return [dict(row) for row in conn.execute(listed).mappings()], int(total)


#: Escalations past a deadline (reminders before one are not escalations), lowest first.
ESCALATED: Sequence[str] = (
    EscalationLevel.accept_overdue.value,
    EscalationLevel.overdue.value,
    EscalationLevel.leadership.value,
)
_RANK = sa.case(*((escalation.c.level == level, rank) for rank, level in enumerate(ESCALATED)), else_=-1)


def escalated(conn: Connection, window: Window, top: int) -> tuple[list[dict[str, Any]], int]:
    """Orders escalated in the window, with the highest level each reached."""
    x = escalation.c
    fired = (x.fired_at >= window[0], x.fired_at < window[1], x.level.in_(ESCALATED))
    per_order = (
        sa.select(x.work_order_id, sa.func.max(_RANK).label("level"), sa.func.min(x.fired_at).label("first"))
        .where(*fired)
        .group_by(x.work_order_id)
        .subquery()
    )
    listed = (
        sa.select(o.id, o.unit, o.kind, o.due_at, o.status, per_order.c.level)
        .select_from(per_order.join(work_order, o.id == per_order.c.work_order_id))
        .order_by(per_order.c.first, o.id)
        .limit(top)
    )
    total = conn.execute(sa.select(sa.func.count()).select_from(per_order)).scalar_one()
    rows = [{**row, "level": ESCALATED[row["level"]]} for row in conn.execute(listed).mappings()]
    return rows, int(total)
