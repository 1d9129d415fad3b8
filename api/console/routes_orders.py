"""The orders' pages: a unit's (or everyone's) orders by state with search, the order page,
and the actions on it. Actions are commands sent the API's way (api/sending.py), decided by
the worker's command handler, with the signed-in officer named in the order's history."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response

from workorder_pipeline.api.auth import Role, officer_principal
from workorder_pipeline.api.console import labels
from workorder_pipeline.api.console.forms import command_request
from workorder_pipeline.api.console.render import page
from workorder_pipeline.api.console.session import ConsoleError, Parts, Reader, Sender, SignedInOfficer
from workorder_pipeline.api.console.views import deadline_notes, offered_actions, order_view
from workorder_pipeline.api.deps import Api
from workorder_pipeline.api.sending import build_command, send_and_wait
from workorder_pipeline.processors.lifecycle import may_act
from workorder_pipeline.schemas.commands import CommandAction, LifecycleEventName
from workorder_pipeline.schemas.records import OrderQuery
from workorder_pipeline.schemas.signal import SourceKey
from workorder_pipeline.schemas.times import for_people
from workorder_pipeline.schemas.workorder import PIPELINE_ACTOR, WorkOrder, WorkOrderStatus

router = APIRouter(prefix="/console")

#: The list's groups: the squad's four, then closed and all.
GROUPS = (
    *labels.SQUAD_GROUPS,
    ("closed", "已办结", (WorkOrderStatus.closed,)),
    ("all", "全部", ()),
)
LIST_LIMIT = 100
_LINK = re.compile(r"^https?://", re.IGNORECASE)
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T")
#: Fields of a signal never shown on the order page (personal data: the complainant).
_HIDDEN_FIELDS = frozenset({"complainant", "schema", "evidence"})


@router.get("/orders", include_in_schema=False)
def order_list(
    request: Request,
    parts: Parts,
    api: Api,
    who: Reader,
    group: str = "pending",
    q: str = "",
    page_no: Annotated[int, Query(alias="page", ge=0, le=10_000)] = 0,
) -> Response:
    grouped = {key: statuses for key, _, statuses in GROUPS}
    if group not in grouped:
        group = "pending"
    principal = who.principal
    query = OrderQuery(
        visible_to=principal.unit if principal.role is Role.unit else None,
        statuses=grouped[group],
        search=q.strip()[:128] or None,
        limit=LIST_LIMIT + 1,  # one more: is there a next page?
        offset=page_no * LIST_LIMIT,
    )
    now = parts.clock()
    found = api.store.orders(query, now).orders
    rows = [order_view(o, now, parts.policy, parts.calendar) for o in found[:LIST_LIMIT]]
    heading = "本单位工单" if principal.role is Role.unit else "全部工单"
    context = {
        "heading": heading,
        "groups": [(key, text, None) for key, text, _ in GROUPS],
        "group": group,
        "q": q,
        "rows": rows,
        "caption": dict((key, text) for key, text, _ in GROUPS)[group],
        "page_no": page_no,
        "next_page": len(found) > LIST_LIMIT,
    }
    return page(request, parts, who, "orders.html", context)


def visible(api: Api, order_id: str, who: SignedInOfficer) -> WorkOrder:
    """The order, if the officer may read it; 404 otherwise (as the API answers)."""
    order = api.store.order(order_id)
    if order is None or not who.principal.may_see(order):
        raise ConsoleError(404, f"没有工单 {order_id}，或无权查看", who)
    return order


@router.get("/orders/{order_id}", include_in_schema=False)
def order_page(request: Request, parts: Parts, api: Api, who: Reader, order_id: str) -> Response:
    order = visible(api, order_id, who)
    now = parts.clock()
    acting = who.principal.acting_unit
    colleagues = []
    if acting is not None and who.principal.may_act:
        roster = parts.officers.roster(acting, now)
        # Colleagues in a field action: the unit's officers whose role acts (not its readers).
        colleagues = [
            o
            for o in roster
            if o.certificate_no != who.officer.certificate_no and officer_principal(o).may_act
        ]
    allowed = parts.policy.lifecycle.return_reasons
    units = parts.policy.units.names()
    names = {o.certificate_no: o.name for o in parts.officers.officers(None, now)}
    context = {
        "v": order_view(order, now, parts.policy, parts.calendar),
        "notes": deadline_notes(order),
        "actions": offered_actions(who.principal, order),
        "action_names": labels.ACTION,
        "dispositions": list(labels.DISPOSITION.items()),
        "return_reasons": [(r, t) for r, t in labels.RETURN_REASON.items() if r in allowed],
        "callbacks": list(labels.CALLBACK.items()),
        "colleagues": colleagues,
        "min_officers": parts.policy.lifecycle.min_officers,
        "units": parts.policy.units.units,
        "signals": [_signal(row) for row in api.store.sources(order_id)],
        "history": [_history_row(row, units, names) for row in api.store.history(order_id)],
        # The forms' id: a double click sends one command (api/console/forms.command_id).
        "form_id": secrets.token_urlsafe(12),
    }
    return page(request, parts, who, "order.html", context)


def _signal(row: dict[str, Any]) -> dict[str, Any]:
    key = SourceKey.parse(row["source_key"])
    payload = row.get("payload") or {}
    if isinstance(payload, str):
        payload = json.loads(payload)
    flat = {
        f"{name}.{inner}" if isinstance(value, dict) else name: item
        for name, value in payload.items()
        if name not in _HIDDEN_FIELDS
        for inner, item in (value.items() if isinstance(value, dict) else [("", value)])
    }
    fields = [
        (labels.SIGNAL_FIELD.get(name, name), _shown(value))
        for name, value in flat.items()
        if value is not None
    ]
    evidence = [link for link in payload.get("evidence") or [] if isinstance(link, str) and _LINK.match(link)]
    return {
        "kind": key.kind,
        "source_id": key.source_id,
        "received_at": row["received_at"],
        "fields": fields,
        "evidence": evidence,
    }


def _shown(value: Any) -> str:
    """A signal's field as a person reads it: times in China time, lists joined."""
    if isinstance(value, list):
        return "、".join(_shown(item) for item in value)
    if isinstance(value, str) and _TIME.match(value):
        with contextlib.suppress(ValueError):
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is not None:
                return for_people(moment)
    return str(value)


#: Fields of a history row's detail shown, each with its vocabulary's names.
_DETAIL_NAMES: tuple[tuple[str, dict[Any, str] | None], ...] = (
    ("disposition", {k.value: v for k, v in labels.DISPOSITION.items()}),
    ("reason", {k.value: v for k, v in labels.RETURN_REASON.items()}),
    ("callback", {k.value: v for k, v in labels.CALLBACK.items()}),
    ("code", {k.value: v for k, v in labels.REFUSAL.items()}),
    ("note", None),
)


def _history_row(row: dict[str, Any], units: dict[str, str], names: dict[str, str]) -> dict[str, Any]:
    detail = row.get("detail") or {}
    if isinstance(detail, str):
        detail = json.loads(detail)
    text = [
        (table or {}).get(detail[key], str(detail[key]))
        for key, table in _DETAIL_NAMES
        if isinstance(detail.get(key), str | int)
    ]
    if row["type"] == LifecycleEventName.reassigned and isinstance(detail.get("to"), str):
        text.append(f"改派至{units.get(detail['to'], detail['to'])}")

    def officer(certificate_no: Any) -> str:
        return (
            f"{names[certificate_no]}（{certificate_no}）" if certificate_no in names else str(certificate_no)
        )

    return {
        "at": row["at"],
        "event": labels.EVENT.get(row["type"], row["type"]),
        "actor": "系统" if row["actor"] == PIPELINE_ACTOR else units.get(row["actor"], row["actor"]),
        "officer": officer(detail["actor_officer"]) if detail.get("actor_officer") else None,
        "officers": "、".join(officer(o) for o in detail.get("officer_ids") or []),
        "text": "；".join(text),
    }


@router.post("/orders/{order_id}/{action}", include_in_schema=False)
async def act(
    request: Request, parts: Parts, api: Api, who: Sender, order_id: str, action: CommandAction
) -> Response:
    """Send the action as the officer's unit (the command center for a duty officer)."""
    principal = who.principal
    acting = principal.acting_unit
    if not principal.may_act or acting is None:
        raise ConsoleError(403, "本角色只能查看，不能办理工单", who)
    order = visible(api, order_id, who)
    if not may_act(action, acting, order.unit):
        raise ConsoleError(403, f"无权对该工单进行“{labels.ACTION[action]}”", who)
    now = parts.clock()
    body = command_request(action, await request.form(), who, now)
    if isinstance(body, str):
        raise ConsoleError(422, body, who)
    try:
        command = build_command(body, order_id, acting, now, officer_id=who.officer.certificate_no)
    except RequestValidationError:  # the command's own limits (processors/intake): sent nowhere
        raise ConsoleError(422, "以下内容填写有误：含有不可用的字符或超出范围的数值", who) from None
    known = await send_and_wait(api, command)
    where = f"/console/orders/{order_id}"
    if known is None:
        return RedirectResponse(f"{where}?pending=1", status_code=303)
    outcome = f"refused={known.refusal.value}" if known.refusal else f"done={action.value}"
    return RedirectResponse(f"{where}?{outcome}", status_code=303)
