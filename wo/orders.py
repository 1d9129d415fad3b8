"""``wo orders`` and ``wo api token``: the HTTP API from the command line."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime
from typing import Any

import httpx

from workorder_pipeline.api.auth import DEFAULT_TOKEN_DAYS, Role, entry_line, issue_token
from workorder_pipeline.config.settings import Settings
from workorder_pipeline.processors.time_texts import time_left
from workorder_pipeline.schemas.times import for_people
from workorder_pipeline.services.clock import utc_now
from workorder_pipeline.wo.arguments import aware_time
from workorder_pipeline.wo.errors import Unreachable

ACTIONS = ("accept", "start", "feedback", "close", "return", "reopen", "reassign", "extend")
#: 延期申请: sub-command -> the API's action.
EXTENSION_ACTIONS = {
    "request-extension": "request_extension",
    "approve-extension": "approve_extension",
    "reject-extension": "reject_extension",
}


def add_commands(commands: Any) -> None:
    orders = commands.add_parser("orders", help="list, show and act on work orders through the HTTP API")
    sub = orders.add_subparsers(required=True, metavar="ORDERS_COMMAND")
    listing = sub.add_parser("list", help="orders matching the filters, newest first")
    for name in ("unit", "status", "kind", "priority", "category", "plate", "enterprise-id"):
        listing.add_argument(f"--{name}")
    for name in ("created-from", "created-to", "closed-from", "closed-to"):
        listing.add_argument(f"--{name}", type=_time, help="ISO 8601 with offset, e.g. +08:00")
    listing.add_argument("--overdue", action="store_true", help="only open orders past their due time")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--offset", type=int, default=0)
    listing.set_defaults(command=_list)
    waiting = sub.add_parser(
        "extensions", help="extension requests waiting for the command center, the order due first first"
    )
    waiting.add_argument("--unit")
    waiting.add_argument("--kind")
    waiting.add_argument("--limit", type=int, default=100)
    waiting.set_defaults(command=_extensions)
    show = sub.add_parser("show", help="one order with its full history")
    show.add_argument("order_id")
    show.set_defaults(command=_show)
    for name, action in {**{a: a for a in ACTIONS}, **EXTENSION_ACTIONS}.items():
        act = sub.add_parser(name, help=f"send a {action} command as your token's unit")
        act.add_argument("order_id")
        act.add_argument("--officers", default="", help="comma-separated officer ids (feedback, close)")
        act.add_argument(
            "--disposition", help="case_filed, rectification_ordered, warning_minor_violation, ..."
        )
        act.add_argument("--note")
        act.add_argument(
            "--callback", choices=["satisfied", "basically_satisfied", "unsatisfied", "unreachable"]
        )
        act.add_argument("--attempts", type=int, default=1, help="call attempts, with --callback")
        act.add_argument("--to", dest="to_unit", help="reassign: the unit to give the order to")
        act.add_argument(
            "--until", dest="new_due_at", type=_time, help="extend: the new due time (ISO 8601 with offset)"
        )
        act.add_argument(
            "--reason", help="return: not_our_jurisdiction, unclear_ownership, overlapping_duties, ..."
        )
        act.add_argument(
            "--working-days", type=int, help="request/approve-extension: working days asked or granted"
        )
        act.add_argument("--hours", type=float, help="request/approve-extension: hours asked or granted")
        act.add_argument("--command-id", help="re-send a command with its id (no second effect)")
        act.set_defaults(command=_act, action=action)

    api = commands.add_parser("api", help="HTTP API administration")
    api_sub = api.add_subparsers(required=True, metavar="API_COMMAND")
    token = api_sub.add_parser("token", help="make a bearer token and print its tokens-file entry")
    token.add_argument("name", help="who will hold it")
    token.add_argument("--role", choices=[r.value for r in Role], default=Role.unit.value)
    token.add_argument("--unit", help="the squad, for role unit (a unit of units.yaml)")
    token.add_argument("--days", type=int, default=DEFAULT_TOKEN_DAYS, help="valid for this many days")
    token.set_defaults(command=_token)


def _time(text: str) -> str:
    """A time option, checked here as `wo rules replay` checks its own (usage, exit 2)."""
    return aware_time(text).isoformat()


def _request(settings: Settings, method: str, path: str, **options: Any) -> httpx.Response:
    """One API call; an API that does not answer raises Unreachable (one line, exit 4)."""
    if settings.api_token is None:
        raise SystemExit("wo orders: set WO_API_TOKEN to your bearer token (see README, HTTP API)")
    base = settings.api_url or f"http://{settings.api_host}:{settings.api_port}"
    headers = {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}
    # Commands wait for the worker's verdict (WO_API_COMMAND_WAIT_S, 10 s): reads may take that long.
    timeout = httpx.Timeout(30.0, connect=5.0)
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=timeout) as client:
            return client.request(method, path, **options)
    except httpx.TransportError as exc:
        raise Unreachable(
            f"the API at {base} did not answer ({type(exc).__name__}: {exc}): is `wo run` serving it "
            "(WO_API_TOKENS_FILE set)? WO_API_URL says where it is"
        ) from exc


#: A timestamp as the API writes it (ISO 8601 with an offset); shown in China time.
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")


def _for_people(value: Any) -> Any:
    """The API's answer with every timestamp in China Standard Time, to the second."""
    if isinstance(value, dict):
        return {
            key: _time_for_people(item) if _is_time(key) else _for_people(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [_for_people(item) for item in value]
    return value


def _is_time(key: str) -> bool:
    """The API names its times ``at`` or ``…_at``; free text (a note) is shown as written."""
    return key == "at" or key.endswith("_at")


def _time_for_people(value: Any) -> Any:
    if isinstance(value, str) and _TIMESTAMP.fullmatch(value):
        return for_people(datetime.fromisoformat(value))
    return _for_people(value)


def _print_response(response: httpx.Response) -> int:
    """A 2xx answer's body as JSON on stdout; any other, one line per problem on stderr (exit 1)."""
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if response.status_code < 300:
        print(json.dumps(_for_people(body), ensure_ascii=False, indent=2, default=str))
        return 0
    for line in refusal_lines(response.status_code, body):
        print(f"wo orders: {line}", file=sys.stderr)
    return 1


#: The API's names of what `wo orders` sends -> the option that sets it.
_OPTIONS = {
    "officer_ids": "--officers",
    "to_unit": "--to",
    "new_due_at": "--until",
    "callback": "--callback",
    "callback.result": "--callback",
    "callback.at": "--callback",
    "callback.attempts": "--attempts",
    "extension": "--working-days",
    "extension.working_days": "--working-days",
    "extension.hours": "--hours",
}


def refusal_lines(status: int, body: Any) -> list[str]:
    """What was refused and why, in words: a command's refusal code and reason, each problem of
    a 422 (the option or field, and its message), or the answer's detail."""
    if isinstance(body, dict) and isinstance(body.get("outcome"), str):
        reason = body.get("reason") or f"HTTP {status}"
        return [f"refused, {body['outcome']}: {reason}"]
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list) and detail:
        return [_problem(item) for item in detail]
    text = (
        detail if isinstance(detail, str) else str(body).strip().splitlines()[0] if str(body).strip() else ""
    )
    return [f"{text or 'no reason given'} (HTTP {status})"]


def _problem(item: Any) -> str:
    """One problem of a 422 body: ``--created-from: 时间须带时区偏移，例如 +08:00``."""
    if not isinstance(item, dict):
        return str(item)
    parts = [str(part) for part in item.get("loc") or []]
    where = parts.pop(0) if parts and parts[0] in ("query", "body", "path") else ""
    name = ".".join(parts)
    if name in _OPTIONS:
        name = _OPTIONS[name]
    elif name and (where == "query" or (where == "body" and len(parts) == 1)):
        name = "--" + name.replace("_", "-")
    message = str(item.get("msg", "invalid"))
    # The API names the field itself ("查询参数 limit：…"); the option named here says it once.
    said = message.split("：", 1)[1] if "：" in message and (name or where) else message
    return f"{name or where or 'request'}: {said}"


def _list(settings: Settings, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit, "offset": args.offset}
    for name in _LIST_FILTERS:
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    if args.overdue:
        params["overdue"] = "true"
    response = _request(settings, "GET", "/orders", params=params)
    if response.status_code != 200:
        return _print_response(response)
    for order in response.json():
        print(
            f"{order['id']}  {order['status']:<18} {order['unit']:<15} {order['priority']} "
            f"{order['kind']:<15} due {for_people(datetime.fromisoformat(order['due_at']))}  "
            f"{order['summary'][:60]}"
        )
    shown = len(response.json())
    total = response.headers.get("X-Total-Count", "?")
    remaining = int(response.headers.get("X-Remaining-Count", "0"))
    more = f"，其后还有 {remaining} 条（--offset {args.offset + shown}）" if remaining else ""
    print(f"共 {total} 条，本页 {shown} 条{more}", file=sys.stderr)
    return 0


def _extensions(settings: Settings, args: argparse.Namespace) -> int:
    """延期申请待审批, one line each, in Chinese, times in China time."""
    params: dict[str, Any] = {"limit": args.limit}
    params |= {name: getattr(args, name) for name in ("unit", "kind") if getattr(args, name) is not None}
    response = _request(settings, "GET", "/extension-requests", params=params)
    if response.status_code != 200:
        return _print_response(response)
    rows = response.json()
    if not rows:
        print("没有待审批的延期申请")
        return 0
    print(f"待审批的延期申请 {len(rows)} 件（按办结时限排序，最早的在前）：")
    for row in rows:
        asked = (
            f"{row['working_days']} 个工作日" if row["working_days"] is not None else f"{row['hours']:g} 小时"
        )
        print(
            f"{row['work_order_id']}  {row['unit']}  {row['kind']}  "
            f"申请于 {for_people(datetime.fromisoformat(row['requested_at']))}  申请延期 {asked}  "
            f"办结时限 {for_people(datetime.fromisoformat(row['due_at']))}"
            f"（{time_left(row['seconds_left'])}）  "
            f"理由：{row['reason']}"
        )
    return 0


_LIST_FILTERS = (
    "unit",
    "status",
    "kind",
    "priority",
    "category",
    "plate",
    "enterprise_id",
    "created_from",
    "created_to",
    "closed_from",
    "closed_to",
)


def _show(settings: Settings, args: argparse.Namespace) -> int:
    return _print_response(_request(settings, "GET", f"/orders/{args.order_id}"))


def _act(settings: Settings, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "action": args.action,
        "officer_ids": [o for o in args.officers.split(",") if o],
    }
    for name in ("disposition", "note", "to_unit", "new_due_at", "reason", "command_id"):
        if getattr(args, name):
            body[name] = getattr(args, name)
    extension = {"working_days": args.working_days, "hours": args.hours}
    if any(value is not None for value in extension.values()):
        body["extension"] = {key: value for key, value in extension.items() if value is not None}
    if args.callback:
        body["callback"] = {
            "result": args.callback,
            "at": utc_now().isoformat(),
            "attempts": args.attempts,
        }
    return _print_response(_request(settings, "POST", f"/orders/{args.order_id}/commands", json=body))


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from workorder_pipeline.services.policy_files import load_policy

    if args.role == Role.unit.value and not args.unit:
        print("wo api token: role unit needs --unit", file=sys.stderr)
        return 2
    units = load_policy(settings.policy_dir).units.ids()
    if args.unit is not None and args.unit not in units:
        print(f"wo api token: no unit {args.unit!r} in {settings.policy_dir}/units.yaml", file=sys.stderr)
        return 2
    if not 1 <= args.days <= 3650:
        print("wo api token: --days is 1 to 3650", file=sys.stderr)
        return 2
    token, entry = issue_token(args.name, Role(args.role), args.unit, args.days, utc_now())
    print(f"# token for {args.name} (shown once; give it to them, keep only the hash):", file=sys.stderr)
    print(f"#   {token}", file=sys.stderr)
    print(
        f"# valid until {for_people(entry.expires_at)}; set revoked: true in the file to refuse it",
        file=sys.stderr,
    )
    print(entry_line(entry))
    return 0
