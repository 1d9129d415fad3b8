"""Complainants' personal data, and the record of who read it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from workorder_pipeline.api.auth import Role
from workorder_pipeline.api.deps import Api, Caller
from workorder_pipeline.api.models import Complainant, PersonalDataReadOut
from workorder_pipeline.api.routes.orders import visible_order
from workorder_pipeline.schemas.records import PersonalDataRead
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.times import UtcDatetime

router = APIRouter()


@router.get(
    "/orders/{order_id}/complainant",
    response_model=Complainant,
    responses={
        403: {"description": "A supervisor, or a unit the order was only copied to"},
        404: {"description": "No such order (or not yours), or not a complaint"},
    },
)
def complainant(order_id: str, caller: Caller, api: Api) -> Complainant:
    """Personal data, for the callback: only the assigned unit and the command center.
    Every read is recorded (who, when, which order, which route): see /personal-data-reads."""
    order = visible_order(api.store, order_id, caller)
    if not caller.may_read_personal_data(order):
        raise HTTPException(403, "投诉人信息仅限承办单位和指挥中心查看")
    if order.kind is not SignalKind.complaint:
        raise HTTPException(404, "该工单不是投诉工单")
    found = Complainant.model_validate(api.store.complainant(order_id))
    route = "GET /orders/{order_id}/complainant"
    read = PersonalDataRead(api.clock(), caller.name, caller.role.value, caller.unit, order_id, route)
    api.store.record_read(read)
    return found


@router.get(
    "/personal-data-reads",
    response_model=list[PersonalDataReadOut],
    responses={403: {"description": "Only the command center lists them"}},
)
def personal_data_reads_listed(
    caller: Caller,
    api: Api,
    work_order_id: str | None = None,
    since: UtcDatetime | None = None,
    until: UtcDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[PersonalDataReadOut]:
    """Who read complainants' personal data, newest first (the command center only)."""
    if caller.role is not Role.command_center:
        raise HTTPException(403, "个人信息查阅记录仅限指挥中心查看")
    found = api.store.reads(work_order_id=work_order_id, since=since, until=until, limit=limit)
    return [PersonalDataReadOut.model_validate(read, from_attributes=True) for read in found]
