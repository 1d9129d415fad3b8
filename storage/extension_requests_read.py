"""Pending extension requests (延期申请待审批) across orders, for the command center.

A pending request lives on its order's row (``extension_requested_at`` set until it is
decided, or the order leaves the unit or closes); the partial index
``ix_work_order_pending_extension`` holds only those rows, by due_at, so listing them costs
the pending requests, not the orders. The reason is the note of the request's history event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from workorder_pipeline.schemas.commands import LifecycleEventName
from workorder_pipeline.schemas.records import ExtensionRequestQuery, PendingExtension
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import Priority, WorkOrderStatus
from workorder_pipeline.storage.bulk import chunks
from workorder_pipeline.storage.tables import PENDING_EXTENSION, work_order, work_order_event


def pending_extensions(engine: Engine, query: ExtensionRequestQuery) -> list[PendingExtension]:
    """The pending requests matching the query, the order due first first (then by id)."""
    with engine.connect() as conn:
        rows = list(conn.execute(listing(query)).mappings())
        reasons = _reasons(conn, [row["id"] for row in rows])
    return [
        PendingExtension(
            work_order_id=row["id"],
            unit=row["unit"],
            kind=SignalKind(row["kind"]),
            priority=Priority(row["priority"]),
            requested_at=row["extension_requested_at"],
            working_days=row["pending_extension_days"],
            hours=row["pending_extension_hours"],
            reason=reasons.get(row["id"], ""),
            due_at=row["due_at"],
        )
        for row in rows
    ]


def listing(query: ExtensionRequestQuery) -> sa.Select[Any]:
    """The orders with a request waiting that match the query, due first first."""
    c = work_order.c
    select = (
        sa.select(
            c.id,
            c.unit,
            c.kind,
            c.priority,
            c.due_at,
            c.extension_requested_at,
            c.pending_extension_days,
            c.pending_extension_hours,
        )
        # The index's own condition, as it is written there, so both databases use the index.
        .where(PENDING_EXTENSION, c.status != WorkOrderStatus.closed.value)
        .order_by(c.due_at, c.id)
        .limit(query.limit)
        .offset(query.offset)
    )
    if query.unit is not None:
        select = select.where(c.unit == query.unit)
    if query.kind is not None:
        select = select.where(c.kind == query.kind.value)
    return select


def _reasons(conn: Connection, order_ids: Sequence[str]) -> dict[str, str]:
    """Order id -> the note of its latest extension request (one waits at a time: the
    latest request of an order with one pending is that one)."""
    e = work_order_event.c
    found: dict[str, str] = {}
    for chunk in chunks(list(order_ids)):
        events = conn.execute(
            sa.select(e.work_order_id, e.detail)
            .where(e.work_order_id.in_(chunk), e.type == LifecycleEventName.extension_requested.value)
            .order_by(e.work_order_id, e.id)
        )
        for order_id, detail in events:
            found[order_id] = _note(detail)
    return found


def _note(detail: Any) -> str:
    note = detail.get("note") if isinstance(detail, dict) else None
    return note if isinstance(note, str) else ""
