"""An order's history (执法全过程记录): the only code that writes work_order_event rows.

The rows are never changed nor deleted (the migrations' triggers refuse it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from workorder_pipeline.schemas.commands import LifecycleEventName
from workorder_pipeline.schemas.workorder import PIPELINE_ACTOR, PipelineEventName
from workorder_pipeline.storage.bulk import insert_rows
from workorder_pipeline.storage.tables import work_order_event

EventName = PipelineEventName | LifecycleEventName


def entry(
    order_id: str, at: datetime, name: EventName, detail: dict[str, Any], actor: str = PIPELINE_ACTOR
) -> dict[str, Any]:
    """One row of the order's history."""
    return {"work_order_id": order_id, "at": at, "type": name.value, "actor": actor, "detail": detail}


def append(conn: Connection, entries: Sequence[dict[str, Any]]) -> None:
    """Write ``entries`` (made by ``entry``), in order, in the caller's transaction."""
    insert_rows(conn, work_order_event, entries)
