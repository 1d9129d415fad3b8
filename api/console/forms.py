"""A console form as the API's command request: the same model, the same checks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData

from workorder_pipeline.api.console.session import SignedInOfficer
from workorder_pipeline.api.models import CommandRequest
from workorder_pipeline.schemas.commands import CommandAction

#: Actions done in the field by at least the policy's number of officers: the signed-in
#: officer and the colleagues picked from the unit's roster.
FIELD_ACTIONS = frozenset({CommandAction.feedback, CommandAction.close})


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value.strip() or None if isinstance(value, str) else None


def command_request(
    action: CommandAction, form: FormData, who: SignedInOfficer, now: datetime
) -> CommandRequest | str:
    """The request the form asks for, or what is wrong with it (in words)."""
    body: dict[str, Any] = {"action": action, "officer_ids": [who.officer.certificate_no], "at": now}
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
        fields = sorted({".".join(str(p) for p in error["loc"]) for error in exc.errors()})
        return f"以下内容填写有误：{'、'.join(fields)}"
