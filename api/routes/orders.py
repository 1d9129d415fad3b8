"""Listing and reading work orders."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response

from workorder_pipeline.api.auth import Principal, Role
from workorder_pipeline.api.deps import Api, Caller
from workorder_pipeline.api.models import NotificationOut, OrderDetail
from workorder_pipeline.schemas.inbound import ComplaintCategory, EnterpriseId
from workorder_pipeline.schemas.plates import Plate
from workorder_pipeline.schemas.records import OrderQuery
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.times import UtcDatetime
from workorder_pipeline.schemas.workorder import Priority, WorkOrder, WorkOrderStatus
from workorder_pipeline.services.ports import OrderReads

router = APIRouter()


def visible_order(orders: OrderReads, order_id: str, caller: Principal) -> WorkOrder:
    """The order, if the caller may read it; otherwise 404, as for an order that does not exist."""
    order = orders.order(order_id)
    if order is None or not caller.may_see(order):
        raise HTTPException(404, "没有这个工单，或无权查看")
    return order


#: Response headers of a listing: how many orders match, and how many follow this page.
TOTAL_HEADER = "X-Total-Count"
REMAINING_HEADER = "X-Remaining-Count"


@router.get(
    "/orders",
    response_model=list[WorkOrder],
    responses={
        200: {
            "description": f"One page; {TOTAL_HEADER}: orders matching in all, {REMAINING_HEADER}: "
            "how many come after this page (ask again with a larger offset)"
        },
        403: {"description": "Another unit's orders"},
    },
)
def list_orders(
    caller: Caller,
    api: Api,
    response: Response,
    unit: str | None = None,
    status: WorkOrderStatus | None = None,
    kind: SignalKind | None = None,
    priority: Priority | None = None,
    overdue: bool | None = None,
    created_from: UtcDatetime | None = None,
    created_to: UtcDatetime | None = None,
    category: ComplaintCategory | None = None,
    plate: Plate | None = None,
    enterprise_id: EnterpriseId | None = None,
    closed_from: UtcDatetime | None = None,
    closed_to: UtcDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[WorkOrder]:
    """Orders matching every filter, newest first. A squad sees its own and those copied to it."""
    visible_to = None
    if caller.role is Role.unit:
        if unit is not None and unit != caller.unit:
            raise HTTPException(403, "只能查看本单位的工单")
        unit, visible_to = None, caller.unit
    query = OrderQuery(
        unit=unit,
        visible_to=visible_to,
        status=status,
        kind=kind,
        priority=priority,
        overdue=overdue,
        created_from=created_from,
        created_to=created_to,
        category=category,
        plate=plate,
        enterprise_id=enterprise_id,
        closed_from=closed_from,
        closed_to=closed_to,
        limit=limit,
        offset=offset,
    )
    page = api.store.orders(query, api.clock())
    response.headers[TOTAL_HEADER] = str(page.total)
    response.headers[REMAINING_HEADER] = str(max(0, page.total - offset - len(page.orders)))
    return page.orders


@router.get(
    "/orders/{order_id}",
    response_model=OrderDetail,
    responses={404: {"description": "No such order, or not one the caller may read"}},
)
def show_order(order_id: str, caller: Caller, api: Api) -> OrderDetail:
    """The order and its full history (every step, command and refusal), and every
    notification about it with each attempt's result."""
    order = visible_order(api.store, order_id, caller)
    notifications = [NotificationOut.model_validate(n) for n in api.store.notifications(order_id)]
    return OrderDetail(order=order, history=api.store.history(order_id), notifications=notifications)
