"""Listing and reading work orders."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from api.auth import Principal, Role
from api.deps import Api, Caller
from api.models import NotificationOut, OrderDetail
from schemas.records import OrderQuery
from schemas.signal import SignalKind
from schemas.times import UtcDatetime
from schemas.workorder import Priority, WorkOrder, WorkOrderStatus
from services.ports import OrderReads

router = APIRouter()


def visible_order(orders: OrderReads, order_id: str, caller: Principal) -> WorkOrder:
    """The order, if the caller may read it; otherwise 404, as for an order that does not exist."""
    order = orders.order(order_id)
    if order is None or not caller.may_see(order):
        raise HTTPException(404, f"no work order {order_id}")
    return order


@router.get(
    "/orders", response_model=list[WorkOrder], responses={403: {"description": "Another unit's orders"}}
)
def list_orders(
    caller: Caller,
    api: Api,
    unit: str | None = None,
    status: WorkOrderStatus | None = None,
    kind: SignalKind | None = None,
    priority: Priority | None = None,
    overdue: bool | None = None,
    created_from: UtcDatetime | None = None,
    created_to: UtcDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[WorkOrder]:
    """Orders matching every filter, newest first. A squad sees its own and those copied to it."""
    visible_to = None
    if caller.role is Role.unit:
        if unit is not None and unit != caller.unit:
            raise HTTPException(403, f"{caller.unit} may list only its own orders")
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
        limit=limit,
        offset=offset,
    )
    return api.store.orders(query, api.clock())


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
