"""The administrator's pages: accounts and rosters (the CLI's ``wo officers`` in a browser);
the API's tokens and the command-signing keys (api/console/access.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from workorder_pipeline.api.auth import DEFAULT_TOKEN_DAYS, Role, Tokens, entry_line, issue_token
from workorder_pipeline.api.console.access import ROLE_TEXT, key_rows, token_rows
from workorder_pipeline.api.console.render import page
from workorder_pipeline.api.console.session import ConsoleError, Parts, Reader, Sender, SignedInOfficer
from workorder_pipeline.schemas.officers import ROLE_NAMES, OfficerExists, OfficerRole
from workorder_pipeline.schemas.times import for_people
from workorder_pipeline.services.officers import MIN_PASSWORD_LENGTH, PasswordTooShort
from workorder_pipeline.services.sender_keys import SENDERS_FILE

router = APIRouter(prefix="/console/admin")
log = structlog.get_logger(__name__)
#: As ``wo api token --days``.
MAX_TOKEN_DAYS = 3650
_DAYS = re.compile(r"[0-9]{1,4}")


def _administrator(who: SignedInOfficer) -> None:
    if not who.principal.may_administer:
        raise ConsoleError(403, "账号管理仅供系统管理员使用", who)


@router.get("/officers", include_in_schema=False)
def officers_page(request: Request, parts: Parts, who: Reader) -> Response:
    _administrator(who)
    context = {
        "officers": parts.officers.officers(None, parts.clock()),
        "role_names": ROLE_NAMES,
        "units": parts.policy.units.units,
        "min_password": MIN_PASSWORD_LENGTH,
    }
    return page(request, parts, who, "officers.html", context)


@router.post("/officers", include_in_schema=False)
async def add_officer(request: Request, parts: Parts, who: Sender) -> Response:
    _administrator(who)
    form = await request.form()
    fields = {name: form.get(name) for name in ("certificate_no", "name", "unit", "role", "password")}
    if not all(isinstance(value, str) for value in fields.values()):
        raise ConsoleError(422, "请填写全部内容", who)
    if fields["unit"] not in parts.policy.units.ids() or fields["role"] not in set(OfficerRole):
        raise ConsoleError(422, "单位或角色不存在", who)
    try:
        parts.officers.add(
            str(fields["certificate_no"]).strip(),
            str(fields["name"]),
            str(fields["unit"]),
            OfficerRole(str(fields["role"])),
            str(fields["password"]),
            parts.clock(),
        )
    except OfficerExists:
        raise ConsoleError(422, "该执法证号已有账号", who) from None
    except PasswordTooShort as exc:
        raise ConsoleError(422, str(exc), who) from None
    except ValueError:
        raise ConsoleError(422, "执法证号或姓名格式不正确", who) from None
    return RedirectResponse("/console/admin/officers?saved=1", status_code=303)


@router.post("/officers/{certificate_no}/{change}", include_in_schema=False)
def set_disabled(parts: Parts, who: Sender, certificate_no: str, change: str) -> Response:
    _administrator(who)
    if change not in ("disable", "enable"):
        raise ConsoleError(404, "没有这个操作", who)
    if parts.officers.set_disabled(certificate_no, change == "disable", parts.clock()) is None:
        raise ConsoleError(404, f"没有执法证号为 {certificate_no} 的账号", who)
    return RedirectResponse("/console/admin/officers?saved=1", status_code=303)


@router.get("/access", include_in_schema=False)
def access_page(request: Request, parts: Parts, who: Reader) -> Response:
    _administrator(who)
    return page(request, parts, who, "access.html", _access_context(request, parts))


@router.post("/access/token", include_in_schema=False)
async def make_token(request: Request, parts: Parts, who: Sender) -> Response:
    """A new token shown once with its line for the tokens file; nothing is written here
    (api/console/access.py says why)."""
    _administrator(who)
    form = await request.form()
    name, role, unit, days = (form.get(f) for f in ("name", "role", "unit", "days"))
    if not isinstance(name, str) or not name.strip() or len(name) > 100 or role not in set(Role):
        raise ConsoleError(422, "请填写持有人并选择角色", who)
    chosen = str(unit) if isinstance(unit, str) and unit else None
    unknown_unit = chosen is not None and chosen not in parts.policy.units.ids()
    if (Role(str(role)) is Role.unit and chosen is None) or unknown_unit:
        raise ConsoleError(422, "中队令牌须选择所属单位（units.yaml 中的单位）", who)
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not isinstance(days, str) or not _DAYS.fullmatch(days) or not 1 <= int(days) <= MAX_TOKEN_DAYS:
        raise ConsoleError(422, f"有效天数为 1 至 {MAX_TOKEN_DAYS}", who)
    token, entry = issue_token(name.strip(), Role(str(role)), chosen, int(days), parts.clock())
    log.info("console_token_made", role=entry.role.value, unit=entry.unit)
    made = {"token": token, "line": entry_line(entry), "until": for_people(entry.expires_at)}
    response = page(request, parts, who, "access.html", {**_access_context(request, parts), "made": made})
    response.headers["Cache-Control"] = "no-store"  # the secret is shown once, never kept by a cache
    return response


def _access_context(request: Request, parts: Parts) -> dict[str, Any]:
    units = parts.policy.units.names()
    tokens: Tokens = request.app.state.tokens
    access = parts.access
    return {
        "tokens": token_rows(tokens.entries, units, parts.clock()),
        "keys": key_rows(access.senders, units),
        "tokens_file": str(access.tokens_file) if access.tokens_file else "WO_API_TOKENS_FILE 所指的文件",
        "senders_file": str((access.policy_dir or Path("policy")) / SENDERS_FILE),
        "roles": list(ROLE_TEXT.items()),
        "units": parts.policy.units.units,
        "default_days": DEFAULT_TOKEN_DAYS,
        "max_days": MAX_TOKEN_DAYS,
    }
