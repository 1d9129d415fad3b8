"""A console form as the API's command request: the same model, the same checks."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from workorder_pipeline.api.console.labels import FORM_FIELD
from workorder_pipeline.api.console.session import CSRF_FIELD, SignedInOfficer
from workorder_pipeline.api.models import CommandRequest
from workorder_pipeline.schemas.commands import CommandAction

#: Actions done in the field by at least the policy's number of officers: the signed-in
#: officer and the colleagues picked from the unit's roster.
FIELD_ACTIONS = frozenset({CommandAction.feedback, CommandAction.close})
#: The order page's id for its forms (a fresh one each time the page is shown).
FORM_ID_FIELD = "form_id"
_FORM_ID = re.compile(r"[A-Za-z0-9_-]{16,32}")


def _named(fields: set[str]) -> str:
    return "、".join(sorted({FORM_FIELD.get(f, FORM_FIELD.get(f.split(".")[0], f)) for f in fields}))


def command_id(action: CommandAction, form: FormData) -> str | None:
    """One click's command id: the page's form id and what the form says. A double click
    sends the same id, which the worker applies once; a form changed and sent again (after
    a refusal, from the browser's Back) is another command."""
    form_id = form.get(FORM_ID_FIELD)
    if not isinstance(form_id, str) or not _FORM_ID.fullmatch(form_id):
        return None
    content = sorted((k, v) for k, v in form.multi_items() if isinstance(v, str) and k != CSRF_FIELD)
    said = json.dumps([action.value, content], ensure_ascii=True).encode()
    return f"console-{form_id}-{hashlib.sha256(said).hexdigest()[:24]}"


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value.strip() or None if isinstance(value, str) else None


def command_request(
    action: CommandAction, form: FormData, who: SignedInOfficer, now: datetime
) -> CommandRequest | str:
    """The request the form asks for, or what is wrong with it (in words)."""
    # U+0000 would be refused when the command is built (no database stores it): say where.
    if nul := {name for name, value in form.multi_items() if isinstance(value, str) and "\x00" in value}:
        return f"以下内容填写有误（含有不可用的空字符）：{_named(nul)}"
    body: dict[str, Any] = {"action": action, "officer_ids": [who.officer.certificate_no], "at": now}
    body["command_id"] = command_id(action, form)
    if action in FIELD_ACTIONS:
        colleagues = [c for c in form.getlist("colleague") if isinstance(c, str) and c]
        body["officer_ids"] += [c for c in dict.fromkeys(colleagues) if c != who.officer.certificate_no]
    for name in ("note", "disposition", "reason", "to_unit"):
        if (value := _text(form, name)) is not None:
            body[name] = value
    if action is CommandAction.request_extension:
        unit = "working_days" if _text(form, "working_days") else "hours"
        body["extension"] = {unit: _text(form, unit)}
    if action is CommandAction.close and _text(form, "callback"):
        body["callback"] = {
            "result": _text(form, "callback"),
            "at": now,
            "attempts": _text(form, "attempts") or 1,
        }
    try:
        return CommandRequest.model_validate(body)
    except ValidationError as exc:
        fields = {".".join(str(p) for p in error["loc"]) for error in exc.errors()}
        return f"以下内容填写有误：{_named(fields)}"
