"""Signing in and out, and each role's start page."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from workorder_pipeline.api.console.render import NAV, page
from workorder_pipeline.api.console.session import (
    COOKIE,
    CSRF_FIELD,
    ConsoleError,
    Parts,
    Reader,
    Sender,
    clear_session_cookie,
    set_session_cookie,
)
from workorder_pipeline.services.officers import SignedIn, SignInRefusal

router = APIRouter(prefix="/console")

#: The sign-in form's CSRF token (no session yet): a cookie and the form field must match.
LOGIN_CSRF_COOKIE = "wo_console_login"
MAX_CERTIFICATE_NO = 64
MAX_PASSWORD = 256


@router.get("", include_in_schema=False)
def start(who: Reader) -> RedirectResponse:
    """Each role's start page."""
    return RedirectResponse(NAV[who.principal.role][0][0], status_code=303)


@router.get("/login", include_in_schema=False)
def sign_in_page(request: Request, parts: Parts) -> Response:
    return _sign_in_form(request, parts, "", 200)


def _sign_in_form(request: Request, parts: Parts, message: str, status: int) -> Response:
    token = secrets.token_urlsafe(32)
    context = {"login_csrf": token, "message": message, "message_kind": "refused" if message else ""}
    response = page(request, parts, None, "login.html", context, status_code=status)
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/console/login",
    )
    return response


@router.post("/login", include_in_schema=False)
async def sign_in(
    request: Request,
    parts: Parts,
    certificate_no: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "",
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), csrf_token.encode()):
        raise ConsoleError(403, "表单已失效，请刷新页面后重试", None)
    # Longer than any account's: the sign-in page's refusal (not FastAPI's English 422).
    if len(certificate_no) > MAX_CERTIFICATE_NO or len(password) > MAX_PASSWORD:
        return _sign_in_form(request, parts, "执法证号或密码错误，或账号已停用", 401)
    address = request.client.host if request.client else "unknown"
    # Argon2 takes tens of milliseconds on purpose: not on the event loop.
    result = await asyncio.to_thread(
        parts.officers.sign_in, certificate_no.strip(), password, address, parts.clock()
    )
    if result is SignInRefusal.throttled:
        return _sign_in_form(request, parts, "尝试次数过多，请 15 分钟后再试", 429)
    if not isinstance(result, SignedIn):
        return _sign_in_form(request, parts, "执法证号或密码错误，或账号已停用", 401)
    response = RedirectResponse("/console", status_code=303)
    set_session_cookie(request, response, result.token)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console/login")
    return response


@router.post("/logout", include_in_schema=False)
def sign_out(request: Request, parts: Parts, who: Sender) -> RedirectResponse:
    token = request.cookies.get(COOKIE)
    if token:
        parts.officers.sign_out(token, parts.clock())
    response = RedirectResponse("/console/login", status_code=303)
    clear_session_cookie(response)
    return response
