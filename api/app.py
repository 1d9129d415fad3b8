"""The HTTP API: list and read work orders, send lifecycle commands.

Every route but /healthz needs a bearer token. A squad sees and acts on the orders assigned
to it and reads those copied to it (抄送); any other order answers exactly as one that does
not exist (404), so the answer tells nobody which ids exist. The command center and
supervisors read everything; supervisors act on nothing. A command is put on ``workorders.commands`` like
any squad system's and decided by the worker's command handler; the API waits for its
verdict (or answers 202 when it takes longer), so both ways in behave the same.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import unquote_plus

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api import dead_letters
from api.auth import Principal, Role, Tokens
from api.docs import serve_docs
from api.guard import AuthFailures, guard
from api.models import CommandRequest, CommandResponse, Complainant, OrderDetail, PersonalDataReadOut
from processors.intake import Rejection, decode_body, decode_command
from schemas.commands import WorkOrderCommand
from schemas.deadletter import RejectionReason
from schemas.signal import SignalKind
from schemas.times import UtcDatetime
from schemas.workorder import Priority, WorkOrder, WorkOrderStatus
from services.ports import CommandNotPublished, CommandPublisher
from storage.dead_letters import DeadLetterOriginals
from storage.personal_data import PersonalDataRead, PersonalDataReads
from storage.repository import WorkOrderRepository
from storage.sent_commands import SentCommands

_bearer = HTTPBearer(auto_error=False)


def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The caller, from the bearer token; 401 without a valid one (unknown, expired, revoked),
    429 for an address that presented too many bad ones lately."""
    failures: AuthFailures = request.app.state.auth_failures
    address = request.client.host if request.client else "unknown"
    wait_s = failures.retry_after_s(address)
    if wait_s:
        raise HTTPException(
            429, "too many bad tokens from this address", headers={"Retry-After": str(wait_s)}
        )
    tokens: Tokens = request.app.state.tokens
    found = tokens.principal(credentials.credentials, request.app.state.clock()) if credentials else None
    if found is None:
        failures.record(address)
        raise HTTPException(401, "a valid bearer token is needed", headers={"WWW-Authenticate": "Bearer"})
    return found


#: Module level, so FastAPI can resolve it from the route functions' annotations.
Caller = Annotated[Principal, Depends(current_principal)]


#: Refusal codes (processors/lifecycle.py, services/commands.py) -> HTTP status.
REFUSAL_STATUS = {
    "forbidden": 403,
    "unknown_order": 404,
    "invalid_state": 409,
    "no_change": 409,
    "not_later": 409,
    "missing_field": 422,
    "too_few_officers": 422,
    "callback_incomplete": 422,
    "unknown_unit": 422,
    "unprocessable": 422,
}


def create_app(
    repository: WorkOrderRepository,
    tokens: Tokens,
    publisher: CommandPublisher,
    wait_s: float = 10.0,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    personal_data_reads: PersonalDataReads | None = None,
    sent: SentCommands | None = None,
) -> FastAPI:
    """``sent``: where the commands the API sent are remembered (default: the repository's database)."""
    app = FastAPI(
        title="Work orders of the transport law-enforcement command center",
        version="1.0.0",
        description=__doc__,
        responses={401: {"description": "No valid bearer token"}},
        docs_url=None,  # served by api.docs, without a CDN
        redoc_url=None,
    )
    serve_docs(app)
    guard(app)
    app.state.tokens = tokens
    app.state.clock = clock
    app.state.auth_failures = AuthFailures()
    reads = personal_data_reads or PersonalDataReads(repository.engine)
    sent_commands = sent or SentCommands(repository.engine)
    dead_letters.add_routes(app, current_principal, DeadLetterOriginals(repository.engine), reads, clock)

    @app.middleware("http")
    async def refuse_u0000_in_urls(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """U+0000 in a path or query parameter: 422, for every route (no database stores it)."""
        where = _u0000_in_url(request.scope)
        if where is not None:
            rejection = Rejection(RejectionReason.invalid_character, "U+0000 is not accepted in a URL")
            return JSONResponse({"detail": _validation_errors(where, rejection)}, status_code=422)
        return await call_next(request)

    def visible_order(order_id: str, caller: Principal) -> WorkOrder:
        """The order, if the caller may read it; otherwise 404, as for an order that does not exist."""
        order = repository.get(order_id)
        if order is None or not caller.may_see(order):
            raise HTTPException(404, f"no work order {order_id}")
        return order

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/orders", response_model=list[WorkOrder], responses={403: {"description": "Another unit's orders"}}
    )
    def list_orders(
        caller: Caller,
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
        return repository.list_orders(
            now=clock(),
            unit=unit,
            visible_to=visible_to,
            status=status.value if status else None,
            kind=kind.value if kind else None,
            priority=priority.value if priority else None,
            overdue=overdue,
            created_from=created_from,
            created_to=created_to,
            limit=limit,
            offset=offset,
        )

    @app.get(
        "/orders/{order_id}",
        response_model=OrderDetail,
        responses={404: {"description": "No such order, or not one the caller may read"}},
    )
    def show_order(order_id: str, caller: Caller) -> OrderDetail:
        """The order and its full history (every step, command and refusal)."""
        order = visible_order(order_id, caller)
        return OrderDetail(order=order, history=repository.history(order_id))

    @app.get(
        "/orders/{order_id}/complainant",
        response_model=Complainant,
        responses={
            403: {"description": "A supervisor, or a unit the order was only copied to"},
            404: {"description": "No such order (or not yours), or not a complaint"},
        },
    )
    def complainant(order_id: str, caller: Caller) -> Complainant:
        """Personal data, for the callback: only the assigned unit and the command center.
        Every read is recorded (who, when, which order, which route): see /personal-data-reads."""
        order = visible_order(order_id, caller)
        if caller.role is Role.supervisor or not caller.is_assigned(order):
            raise HTTPException(403, "only the assigned unit and the command center read complainants' data")
        if order.kind is not SignalKind.complaint:
            raise HTTPException(404, f"work order {order_id} is not a complaint")
        payload: dict[str, Any] = next((s["payload"] for s in repository.sources(order_id)), {})
        found = Complainant.model_validate(payload.get("complainant") or {})
        route = "GET /orders/{order_id}/complainant"
        reads.record(PersonalDataRead(clock(), caller.name, caller.role.value, caller.unit, order_id, route))
        return found

    @app.get(
        "/personal-data-reads",
        response_model=list[PersonalDataReadOut],
        responses={403: {"description": "Only the command center lists them"}},
    )
    def personal_data_reads_listed(
        caller: Caller,
        work_order_id: str | None = None,
        since: UtcDatetime | None = None,
        until: UtcDatetime | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[PersonalDataReadOut]:
        """Who read complainants' personal data, newest first (the command center only)."""
        if caller.role is not Role.command_center:
            raise HTTPException(403, "only the command center lists reads of personal data")
        found = reads.listed(work_order_id=work_order_id, since=since, until=until, limit=limit)
        return [PersonalDataReadOut.model_validate(read, from_attributes=True) for read in found]

    @app.post(
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
        order_id: str, body: CommandRequest, caller: Caller, request: Request, response: Response
    ) -> CommandResponse:
        """Send a lifecycle command as the caller's unit (the command center for its role)."""
        if caller.role is Role.supervisor:
            raise HTTPException(403, "supervisors read; they do not act on orders")
        visible_order(order_id, caller)
        acting = caller.acting_unit
        assert acting is not None
        command = _command(await request.body(), order_id, acting, clock())
        known = await asyncio.to_thread(repository.command_outcome, command.command_id)
        if known is not None and known["work_order_id"] != order_id:
            # Answered in the declared 409 body, and without the other order's id or details.
            response.status_code = 409
            return CommandResponse(
                command_id=command.command_id,
                outcome="command_id_reused",
                reason="this command_id was already used for another order: send a new one",
            )
        if known is None:
            try:
                await asyncio.to_thread(publisher.publish, command)
            except CommandNotPublished as exc:
                raise HTTPException(
                    503, f"the command could not be queued, nothing was recorded: {exc}"
                ) from exc
            await asyncio.to_thread(sent_commands.record, command.command_id, order_id, clock())
            known = await _wait_for_outcome(repository, command.command_id, wait_s)
        if known is None:
            response.status_code = 202
            response.headers["Location"] = f"/commands/{command.command_id}"
            return CommandResponse(command_id=command.command_id, outcome="pending")
        return _answer(known, repository, response)

    @app.get(
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
    def command_status(command_id: str, caller: Caller, response: Response) -> CommandResponse:
        """How a command was decided (pending while the worker has not handled one the API sent)."""
        known = repository.command_outcome(command_id)
        about = known["work_order_id"] if known is not None else sent_commands.work_order_of(command_id)
        order = repository.get(about) if about is not None else None
        if about is None or (order is not None and not caller.may_see(order)):
            # Never sent, or another unit's: the same answer, so it tells nobody which ids exist.
            response.status_code = 404
            return CommandResponse(
                command_id=command_id,
                outcome="unknown_command",
                reason="no command with this id was sent through the API or decided",
            )
        if known is None:
            response.status_code = 202
            return CommandResponse(command_id=command_id, outcome="pending")
        return _answer(known, repository, response)

    @app.exception_handler(ValueError)
    async def _value_error(_: Request, exc: ValueError) -> Response:
        from fastapi.responses import JSONResponse

        return JSONResponse({"detail": str(exc)}, status_code=422)

    return app


def _command(raw_body: bytes, order_id: str, acting_unit: str, now: datetime) -> WorkOrderCommand:
    """The command a request body asks for, under the rules every command meets (strict
    types, no U+0000, 64-bit integers, bounded size: processors.intake), so the API never
    puts on the topic a command the worker would refuse to read. 422 otherwise."""
    body = decode_body(raw_body, CommandRequest)
    if isinstance(body, Rejection):
        raise RequestValidationError(_validation_errors("body", body))
    document = {
        **body.model_dump(mode="json", exclude={"officer_ids", "command_id", "at"}, exclude_none=True),
        "schema": "workorder-command/1",
        "command_id": body.command_id or f"api-{uuid.uuid4()}",
        "work_order_id": order_id,
        "actor": {"unit": acting_unit, "officer_ids": body.officer_ids},
        "at": (body.at or now).isoformat(),
    }
    command = decode_command(json.dumps(document, ensure_ascii=False).encode())
    if isinstance(command, Rejection):
        raise RequestValidationError(_validation_errors("body", command))
    return command


def _u0000_in_url(scope: Mapping[str, Any]) -> str | None:
    """``path`` or ``query`` when U+0000 is in that part of the request's URL (decoded)."""
    if "\x00" in scope.get("path", ""):
        return "path"
    if "\x00" in unquote_plus(scope.get("query_string", b"").decode("latin-1")):
        return "query"
    return None


def _validation_errors(where: str, rejection: Rejection) -> list[dict[str, Any]]:
    """A rejection in the shape of FastAPI's 422 body (the documented HTTPValidationError)."""
    return [{"loc": [where], "msg": rejection.detail, "type": rejection.reason.value}]


async def _wait_for_outcome(
    repository: WorkOrderRepository, command_id: str, wait_s: float
) -> dict[str, Any] | None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        known = await asyncio.to_thread(repository.command_outcome, command_id)
        if known is not None:
            return known
        await asyncio.sleep(0.1)
    return None


def _answer(known: dict[str, Any], repository: WorkOrderRepository, response: Response) -> CommandResponse:
    outcome = known["outcome"]
    if outcome != "applied":
        response.status_code = REFUSAL_STATUS.get(outcome, 400)
    return CommandResponse(
        command_id=known["command_id"],
        outcome=outcome,
        reason=known["reason"],
        order=repository.get(known["work_order_id"]),
    )
