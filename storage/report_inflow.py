"""The monthly report's counts of what came in (services/report.py): one GROUP BY per table,
never a row per order. Windows are half-open [start, end) in UTC."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from workorder_pipeline.storage.tables import (
    dead_letter_log,
    suppressed_signal,
    work_order,
    work_order_source,
)

Window = tuple[datetime, datetime]


def counted(conn: Connection, query: sa.Select[Any, Any]) -> Counter[str]:
    """``SELECT key, count ... GROUP BY key`` as a Counter (a NULL key counts under "")."""
    found: Counter[str] = Counter()
    for key, count in conn.execute(query):
        found[key or ""] += int(count)
    return found


def _by(
    column: sa.ColumnElement[str | None], at: sa.ColumnElement[datetime], window: Window
) -> sa.Select[Any, Any]:
    return (
        sa.select(column.label("key"), sa.func.count().label("n"))
        .where(at >= window[0], at < window[1])
        .group_by(column)
    )


def signals_by_kind(conn: Connection, window: Window) -> Counter[str]:
    """Valid signals received: those kept as an order's evidence and those suppressed."""
    return counted(conn, _by(work_order_source.c.kind, work_order_source.c.received_at, window)) + counted(
        conn, _by(suppressed_signal.c.kind, suppressed_signal.c.received_at, window)
    )


def _platform(table: sa.Table) -> sa.ColumnElement[str | None]:
    """The publisher's platform_id (alarms, check-ins) or the complaint's channel."""
    payload = table.c.payload
    return sa.func.coalesce(payload["platform_id"].as_string(), payload["channel"].as_string(), "")


def signals_by_platform(conn: Connection, window: Window) -> Counter[str]:
    """By the publisher's platform_id (alarms, check-ins) or the complaint's channel."""
    total: Counter[str] = Counter()
    for table in (work_order_source, suppressed_signal):
        total += counted(conn, _by(_platform(table), table.c.received_at, window))
    return total


def signals_by_category(conn: Connection, window: Window) -> Counter[str]:
    """Complaints by the ticket's category (the payload's ``category``: no other field of it
    is read, the complainant's least of all)."""
    total: Counter[str] = Counter()
    for table in (work_order_source, suppressed_signal):
        category = table.c.payload["category"].as_string()
        query = _by(category, table.c.received_at, window).where(table.c.kind == "complaint")
        total += counted(conn, query)
    return total


def signals_by_region(conn: Connection, window: Window) -> Counter[str]:
    """By the region routing used (the stored region_code; "": none, as check-in failures)."""
    total: Counter[str] = Counter()
    for table in (work_order_source, suppressed_signal):
        total += counted(conn, _by(table.c.region_code, table.c.received_at, window))
    return total


def orders_by_platform(conn: Connection, window: Window) -> Counter[str]:
    """Orders created in the window by the platform of the signal that registered each: the
    one received at the order's creation (signals merged in the same batch share that moment:
    the lowest source key of them)."""
    s, o = work_order_source.c, work_order.c
    first = (
        sa.select(sa.func.min(s.source_key).label("source_key"))
        .select_from(work_order_source.join(work_order, o.id == s.work_order_id))
        .where(o.created_at >= window[0], o.created_at < window[1], s.received_at == o.created_at)
        .group_by(s.work_order_id)
        .subquery()
    )
    platform = _platform(work_order_source)
    query = (
        sa.select(platform.label("key"), sa.func.count().label("n"))
        .select_from(first.join(work_order_source, s.source_key == first.c.source_key))
        .group_by(platform)
    )
    return counted(conn, query)


def orders_by(conn: Connection, column: sa.ColumnElement[str | None], window: Window) -> Counter[str]:
    """Orders created in the window, by ``column`` (a work_order column)."""
    return counted(conn, _by(column, work_order.c.created_at, window))


def suppressed_by_reason(conn: Connection, window: Window) -> Counter[str]:
    return counted(conn, _by(suppressed_signal.c.reason, suppressed_signal.c.received_at, window))


def dead_letters_by(conn: Connection, column: str, window: Window) -> Counter[str]:
    """Dead letters by ``reason`` or ``topic``."""
    return counted(conn, _by(dead_letter_log.c[column], dead_letter_log.c.at, window))
