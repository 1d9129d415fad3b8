"""The console's pages: Jinja2 templates (autoescaped: a plate or a summary holding markup
shows as text), with what every page shows (the officer, the navigation, the time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from workorder_pipeline.api.auth import Role
from workorder_pipeline.api.console import labels
from workorder_pipeline.api.console.session import ConsoleParts, SignedInOfficer
from workorder_pipeline.schemas.commands import CommandAction, Disposition, RefusalCode
from workorder_pipeline.schemas.officers import ROLE_NAMES
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.times import for_people
from workorder_pipeline.schemas.workorder import Priority

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")
TEMPLATES.env.autoescape = True  # every template, whatever its name ends with

#: Each role's pages in the navigation; the first is its start page.
NAV: dict[Role, tuple[tuple[str, str], ...]] = {
    Role.unit: (("/console/orders", "本单位工单"),),
    Role.command_center: (
        ("/console/center", "指挥中心待办"),
        ("/console/orders", "全部工单"),
        ("/console/figures", "考核指标"),
        ("/console/reports", "月度报告"),
    ),
    Role.supervisor: (
        ("/console/figures", "考核指标"),
        ("/console/reports", "月度报告"),
        ("/console/orders", "全部工单"),
    ),
    Role.administrator: (
        ("/console/admin/officers", "账号与名册"),
        ("/console/admin/access", "令牌与密钥"),
        ("/console/orders", "全部工单"),
    ),
}


def _maybe(table: dict[Any, str], kind: type[Any]) -> Any:
    def name(value: Any) -> str:
        try:
            return table[kind(value)]
        except ValueError:
            return str(value)

    return name


def _message(request: Request) -> tuple[str, str]:
    """The outcome of the last action, from the redirect's query (known codes only)."""
    query = request.query_params
    if (done := query.get("done")) in {a.value for a in CommandAction}:
        return f"已{labels.ACTION[CommandAction(done)]}", "done"
    if (refused := query.get("refused")) in {c.value for c in RefusalCode}:
        return f"未能办理：{labels.REFUSAL[RefusalCode(refused)]}", "refused"
    if query.get("pending"):
        return "已提交，处理结果尚未返回，请稍后刷新", "done"
    if query.get("saved"):
        return "已保存", "done"
    return "", ""


def page(
    request: Request,
    parts: ConsoleParts,
    who: SignedInOfficer | None,
    template: str,
    context: dict[str, Any],
    status_code: int = 200,
) -> HTMLResponse:
    units = parts.policy.units.names()
    message, kind = _message(request)
    common = {
        "who": who,
        "nav": NAV[who.principal.role] if who else (),
        "role_name": ROLE_NAMES[who.officer.role] if who else "",
        "now_text": for_people(parts.clock()),
        "people": for_people,
        "unit_name": lambda unit: units.get(unit, unit),
        "kind_name": _maybe(labels.KIND, SignalKind),
        "priority_name": _maybe(labels.PRIORITY, Priority),
        "disposition_name": _maybe(labels.DISPOSITION, Disposition),
        "message": context.pop("message", message),
        "message_kind": context.pop("message_kind", kind),
    }
    return TEMPLATES.TemplateResponse(request, template, {**common, **context}, status_code=status_code)


def error_page(
    request: Request, parts: ConsoleParts, who: SignedInOfficer | None, status: int, detail: str
) -> HTMLResponse:
    heading = {403: "无权访问", 404: "未找到", 422: "填写有误"}.get(status, "出错了")
    context = {"status": status, "heading": heading, "detail": detail}
    return page(request, parts, who, "error.html", context, status_code=status)
