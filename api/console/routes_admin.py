"""The administrator's page: accounts and rosters (the CLI's ``wo officers`` in a browser)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from workorder_pipeline.api.console.render import ConsoleError, page
from workorder_pipeline.api.console.session import Parts, Reader, Sender, SignedInOfficer
from workorder_pipeline.schemas.officers import ROLE_NAMES, OfficerExists, OfficerRole
from workorder_pipeline.services.officers import MIN_PASSWORD_LENGTH, PasswordTooShort

router = APIRouter(prefix="/console/admin")


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
