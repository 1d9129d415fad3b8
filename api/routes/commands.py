"""Lifecycle commands: put on ``workorders.commands`` like any squad system's, decided by the
worker's command handler; the route waits for the verdict (or answers 202 when it takes longer)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError

from workorder_pipeline.api.deps import Api, Caller
from workorder_pipeline.api.guard import validation_errors
from workorder_pipeline.api.models import AnswerOutcome, CommandRequest, CommandResponse
from workorder_pipeline.api.routes.orders import visible_order
from workorder_pipeline.api.sending import build_command, send_and_wait
from workorder_pipeline.processors.intake import Rejection, decode_body
from workorder_pipeline.schemas.commands import RefusalCode, WorkOrderCommand
from workorder_pipeline.schemas.records import DecidedCommand
from workorder_pipeline.services.ports import OrderReads

#: The answer's status for every refusal code. No default: a code missing here fails the
#: tests (tests/unit/test_api_without_database.py), never a client.
REFUSAL_STATUS: dict[RefusalCode, int] = {
    RefusalCode.forbidden: 403,
    RefusalCode.unknown_order: 404,
    RefusalCode.invalid_state: 409,
    RefusalCode.no_change: 409,
    RefusalCode.not_later: 409,
    RefusalCode.missing_field: 422,
    RefusalCode.too_few_officers: 422,
    RefusalCode.callback_incomplete: 422,
    RefusalCode.unknown_unit: 422,
    RefusalCode.unprocessable: 422,
    RefusalCode.too_late: 409,
    RefusalCode.extension_pending: 409,
    RefusalCode.no_extension_pending: 409,
    RefusalCode.over_limit: 422,
    RefusalCode.exceeds_request: 422,
    RefusalCode.reason_not_allowed: 422,
    RefusalCode.needs_new_feedback: 409,
}

router = APIRouter()
#: The longest command_id a command can carry (schemas.inbound.Id).
MAX_COMMAND_ID = 128


@router.post(
    "/orders/{order_id}/commands",
    response_model=CommandResponse,
    responses={
        202: {"model": CommandResponse, "description": "Accepted, not decided yet"},
        403: {"description": "Not your order, or not your role's action"},
        404: {"description": "No such order"},
        409: {
            "model": CommandResponse,
            "description": "Not allowed in the order's state, or command_id used for another order",
        },
        422: {"description": "Something the command needs is missing or wrong"},
        503: {"description": "The broker is unavailable: nothing was recorded, try again"},
    },
)
async def send_command(
    order_id: str, body: CommandRequest, caller: Caller, api: Api, request: Request, response: Response
) -> CommandResponse:
    """Send a lifecycle command as the caller's unit (the command center for its role)."""
    if not caller.may_act:
        raise HTTPException(403, "本角色只能查看，不能办理工单")
    visible_order(api.store, order_id, caller)
    acting = caller.acting_unit
    assert acting is not None
    command = _command(await request.body(), order_id, acting, api.clock())
    known = await asyncio.to_thread(api.store.decided, command.command_id)
    if known is not None and known.work_order_id != order_id:
        # Answered in the declared 409 body, and without the other order's id or details.
        response.status_code = 409
        return CommandResponse(
            command_id=command.command_id,
            outcome=AnswerOutcome.command_id_reused,
            reason="该 command_id 已用于另一工单，请换一个新的 command_id",
        )
    if known is None:
        known = await send_and_wait(api, command)
    if known is None:
        response.status_code = 202
        response.headers["Location"] = f"/commands/{command.command_id}"
        return CommandResponse(command_id=command.command_id, outcome=AnswerOutcome.pending)
    return _answer(known, api.store, response)


@router.get(
    "/commands/{command_id}",
    response_model=CommandResponse,
    responses={
        202: {"model": CommandResponse, "description": "Sent through the API, not decided yet"},
        403: {"model": CommandResponse, "description": "Another unit's command, or refused as forbidden"},
        404: {
            "model": CommandResponse,
            "description": "No command with this id was sent through the API or decided "
            "(outcome unknown_command); or refused: no such order",
        },
        409: {"model": CommandResponse, "description": "Refused: not allowed in the order's state"},
        422: {"model": CommandResponse, "description": "Refused: something missing or wrong"},
    },
)
def command_status(command_id: str, caller: Caller, api: Api, response: Response) -> CommandResponse:
    """How a command was decided (pending while the worker has not handled one the API sent)."""
    known = api.store.decided(command_id)
    about = known.work_order_id if known is not None else api.store.sent_about(command_id)
    order = api.store.order(about) if about is not None else None
    if about is None or (order is not None and not caller.may_see(order)):
        # Never sent, or another unit's: the same answer, so it tells nobody which ids exist.
        response.status_code = 404
        return CommandResponse(
            # An id longer than any command carries (schemas.inbound.Id) is not said back.
            command_id=command_id if len(command_id) <= MAX_COMMAND_ID else "",
            outcome=AnswerOutcome.unknown_command,
            reason="没有经本接口发送或已处理的此编号指令",
        )
    if known is None:
        response.status_code = 202
        return CommandResponse(command_id=command_id, outcome=AnswerOutcome.pending)
    return _answer(known, api.store, response)


def _command(raw_body: bytes, order_id: str, acting_unit: str, now: datetime) -> WorkOrderCommand:
    """The command a request body asks for (422 for a body or a command that breaks the rules)."""
    body = decode_body(raw_body, CommandRequest)
    if isinstance(body, Rejection):
        raise RequestValidationError(validation_errors("body", body))
    return build_command(body, order_id, acting_unit, now)


def _answer(known: DecidedCommand, orders: OrderReads, response: Response) -> CommandResponse:
    if known.refusal is not None:
        response.status_code = REFUSAL_STATUS[known.refusal]
    return CommandResponse(
        command_id=known.command_id,
        outcome=known.refusal or AnswerOutcome.applied,
        reason=known.reason,
        order=orders.order(known.work_order_id),
    )
