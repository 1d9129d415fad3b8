"""A work order as the work_order table holds it, and back."""

from __future__ import annotations

import operator
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, RowMapping

from workorder_pipeline.schemas.signal import SourceKey
from workorder_pipeline.schemas.workorder import Subject, WorkOrder
from workorder_pipeline.storage.one_of import one_of
from workorder_pipeline.storage.tables import work_order, work_order_source

#: WorkOrder fields stored in work_order columns of the same name.
_SAME_NAME_COLUMNS = tuple(
    name
    for name in WorkOrder.model_fields
    if name in work_order.c and name not in ("copied_to", "related_ids")
)
_SUBJECT_COLUMNS = tuple(Subject.model_fields)
#: A new order's row: its values read from the models' __dict__ by one C call each (the
#: attributes one by one cost 5 µs per order).
_ROW_COLUMNS = (
    *_SAME_NAME_COLUMNS,
    *_SUBJECT_COLUMNS,
    "copied_to",
    "related_ids",
    "updated_at",
    "dispatched_at",
    "next_check_at",
)
_same_name_values = operator.itemgetter(*_SAME_NAME_COLUMNS)
_subject_values = operator.itemgetter(*_SUBJECT_COLUMNS)

_SOURCES_OF_ORDERS = (
    sa.select(work_order_source.c.work_order_id, work_order_source.c.source_key)
    .where(one_of(work_order_source.c.work_order_id, "ids"))
    .order_by(work_order_source.c.received_at, work_order_source.c.source_key)
)


def order_row(order: WorkOrder, now: datetime) -> dict[str, Any]:
    """The work_order row of a new order."""
    return dict(
        zip(
            _ROW_COLUMNS,
            (
                *_same_name_values(order.__dict__),
                *_subject_values(order.subject.__dict__),
                ",".join(order.copied_to),
                ",".join(sorted(order.related_ids)),
                now,  # updated_at
                None,  # dispatched_at
                order.created_at,  # next_check_at: the escalation tick looks at it next time
            ),
            strict=True,
        )
    )


def with_sources(conn: Connection, rows: list[RowMapping]) -> list[WorkOrder]:
    """The orders of work_order ``rows``, with the ids of the signals merged into each."""
    if not rows:
        return []
    ids = [row["id"] for row in rows]
    sources: dict[str, list[str]] = {}
    for source in conn.execute(_SOURCES_OF_ORDERS, {"ids": ids}).all():
        sources.setdefault(source.work_order_id, []).append(SourceKey.parse(source.source_key).source_id)
    return [_order_from_row(row, sources.get(row["id"], [])) for row in rows]


def _order_from_row(row: RowMapping, source_ids: list[str]) -> WorkOrder:
    return WorkOrder.model_validate(
        {
            **{name: row[name] for name in _SAME_NAME_COLUMNS},
            "subject": {name: row[name] for name in _SUBJECT_COLUMNS},
            "source_ids": tuple(source_ids),
            "related_ids": tuple(order_id for order_id in row["related_ids"].split(",") if order_id),
            "copied_to": tuple(unit for unit in row["copied_to"].split(",") if unit),
        }
    )
