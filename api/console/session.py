"""Who is signed in to the console: the session cookie, CSRF on every form, the rights.

The cookie holds a random token (HttpOnly, SameSite=Strict, Secure when the request came
over TLS, path /console); the database holds its hash (services/officers.py). Every form
carries the session's CSRF token, compared in constant time before anything is done.
The officer's rights are api.auth's: the same Principal the API's bearer tokens give.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated
from urllib.parse import unquote_to_bytes

from fastapi import Depends, Request, Response

from workorder_pipeline.api.auth import Principal, officer_principal
from workorder_pipeline.api.console.access import ApiAccess
from workorder_pipeline.processors.calendar import WorkCalendar
from workorder_pipeline.schemas.officers import Officer
from workorder_pipeline.schemas.policy import Policy
from workorder_pipeline.services.figure_snapshots import FigureSnapshots
from workorder_pipeline.services.officers import Officers

COOKIE = "wo_console"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True, slots=True)
class ConsoleParts:
    officers: Officers
    policy: Policy
    calendar: WorkCalendar
    clock: Callable[[], datetime]
    #: The months' figures, shared with the leader's gauges (services/figure_snapshots.py).
    figures: FigureSnapshots
    #: The API's tokens file and the keys the worker trusts (the administrator's page).
    access: ApiAccess = field(default_factory=ApiAccess)


@dataclass(frozen=True, slots=True)
class SignedInOfficer:
    officer: Officer
    principal: Principal
    csrf_token: str


class NotSignedIn(Exception):
    """No valid session: the answer is the sign-in page (303)."""


class ConsoleError(Exception):
    """An answer as a page of the console (403, 404, 422), for the signed-in ``who``."""

    def __init__(self, status: int, detail: str, who: SignedInOfficer | None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.who = who


def well_formed(request: Request, body: bytes, who: SignedInOfficer | None) -> None:
    """A form as a browser sends it: URL-encoded UTF-8 (every other byte percent-encoded).
    Raw bytes or invalid UTF-8 would reach the form as other characters than were typed
    (the parser decodes bytes as Latin-1 and bad UTF-8 as U+FFFD): refused instead (422)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return
    try:
        body.decode("ascii")
        for part in body.replace(b"+", b" ").split(b"&"):
            unquote_to_bytes(part).decode("utf-8")
    except UnicodeDecodeError:
        raise ConsoleError(422, "表单内容不是有效的 UTF-8 文本，请在浏览器中重新填写后提交", who) from None


def console_parts(request: Request) -> ConsoleParts:
    parts: ConsoleParts = request.app.state.console
    return parts


Parts = Annotated[ConsoleParts, Depends(console_parts)]


def signed_in(request: Request, parts: Parts) -> SignedInOfficer:
    """The signed-in officer (each use restarts the idle clock); NotSignedIn otherwise."""
    token = request.cookies.get(COOKIE)
    found = parts.officers.session(token, parts.clock()) if token else None
    if found is None:
        raise NotSignedIn()
    officer, session = found
    return SignedInOfficer(officer, officer_principal(officer), session.csrf_token)


async def csrf_checked(
    request: Request, who: Annotated[SignedInOfficer, Depends(signed_in)]
) -> SignedInOfficer:
    """The signed-in officer, for a form whose CSRF token is the session's (403 otherwise)."""
    body = await request.body()  # first: kept, the form is parsed from it
    sent = (await request.form()).get(CSRF_FIELD)
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), who.csrf_token.encode()):
        raise ConsoleError(403, "表单已失效，请刷新页面后重试", who)
    well_formed(request, body, who)
    return who


#: A page's reader, and a form's sender (CSRF checked).
Reader = Annotated[SignedInOfficer, Depends(signed_in)]
Sender = Annotated[SignedInOfficer, Depends(csrf_checked)]


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/console",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")
