"""延期申请待审批: the extension requests waiting for the command center's decision."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from workorder_pipeline.api.auth import Role
from workorder_pipeline.api.deps import Api, Caller
from workorder_pipeline.api.models import ExtensionRequestRow
from workorder_pipeline.schemas.records import ExtensionRequestQuery
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.services.extension_requests import waiting_requests

router = APIRouter()


@router.get(
    "/extension-requests",
    response_model=list[ExtensionRequestRow],
    responses={403: {"description": "Not the command center (or a supervisor)"}},
)
def list_extension_requests(
    caller: Caller,
    api: Api,
    unit: str | None = None,
    kind: SignalKind | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[ExtensionRequestRow]:
    """Requests waiting for a decision, the order due first first. The command center
    decides them; supervisors read them; a squad sees its own on its orders."""
    if caller.role is Role.unit:
        raise HTTPException(403, "跨工单的延期申请仅限指挥中心和督查查看")
    query = ExtensionRequestQuery(unit=unit, kind=kind, limit=limit, offset=offset)
    return [
        ExtensionRequestRow(
            work_order_id=waiting.request.work_order_id,
            unit=waiting.request.unit,
            kind=waiting.request.kind,
            priority=waiting.request.priority,
            requested_at=waiting.request.requested_at,
            working_days=waiting.request.working_days,
            hours=waiting.request.hours,
            reason=waiting.request.reason,
            due_at=waiting.request.due_at,
            seconds_left=waiting.seconds_left,
        )
        for waiting in waiting_requests(api.store, query, api.clock())
    ]
