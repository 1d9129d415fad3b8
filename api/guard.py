"""What the API does before and after every route: a body limit, security headers, no
U+0000 in URLs, and slowing down an address that keeps presenting bad tokens.

No CORS middleware is installed: a browser page of another origin cannot read answers.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import unquote_plus

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from workorder_pipeline.api.refusals import console_page, is_console, refusal
from workorder_pipeline.processors.intake import Rejection
from workorder_pipeline.schemas.deadletter import RejectionReason

#: A command is a few KB; nothing the API takes comes near this.
MAX_BODY_BYTES = 64 * 1024
#: Bad tokens from one address within the window before it is answered 429 for a while.
MAX_AUTH_FAILURES = 10
AUTH_FAILURE_WINDOW_S = 60.0
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
#: JSON answers load nothing; /docs loads its own script and styles (and runs one inline).
CSP_JSON = "default-src 'none'; frame-ancestors 'none'"
CSP_DOCS = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
    )
)

#: The console's pages load their own styles and scripts only, and post forms to themselves.
CSP_CONSOLE = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)


class AuthFailures:
    """Bad-token attempts per client address, in a sliding window (per worker process)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def record(self, address: str) -> None:
        self._recent(address).append(self._clock())

    def retry_after_s(self, address: str) -> int:
        """Seconds until ``address`` may try again; 0 when it may now."""
        recent = self._recent(address)
        if len(recent) < MAX_AUTH_FAILURES:
            return 0
        return max(1, int(recent[0] + AUTH_FAILURE_WINDOW_S - self._clock()) + 1)

    def _recent(self, address: str) -> deque[float]:
        recent = self._failures.setdefault(address, deque())
        while recent and recent[0] <= self._clock() - AUTH_FAILURE_WINDOW_S:
            recent.popleft()
        if not recent and len(self._failures) > 10_000:  # forget idle addresses
            self._failures.pop(address, None)
            recent = self._failures.setdefault(address, deque())
        return recent


def guard(app: FastAPI) -> None:
    @app.middleware("http")
    async def limit_and_label(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        too_big = _declared_too_big(request)
        if too_big is not None:
            response: Response = too_big
        else:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        path = request.url.path
        docs = path == "/docs" or path.startswith("/docs-assets")
        console = _is_console(path)
        csp = CSP_DOCS if docs else CSP_CONSOLE if console else CSP_JSON
        response.headers.setdefault("Content-Security-Policy", csp)
        return response

    @app.middleware("http")
    async def refuse_u0000_in_urls(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """U+0000 in a path or query parameter: 422, for every route (no database stores it)."""
        where = _u0000_in_url(request.scope)
        if where is not None:
            if _is_console(request.url.path):  # a person's browser: a page, in Chinese
                return HTMLResponse(U0000_PAGE, status_code=422)
            refused = refusal([where], RejectionReason.invalid_character.value)
            return JSONResponse({"detail": [refused]}, status_code=422)
        return await call_next(request)


#: The console's answer to a link holding U+0000 (before any route: no session is read).
U0000_PAGE = (
    '<!doctype html><html lang="zh-CN"><meta charset="utf-8"><title>填写有误</title>'
    "<h1>填写有误</h1><p>链接中含有不允许的字符（U+0000），请从页面上的链接重新进入。</p>"
    '<p><a href="/console">返回首页</a></p></html>'
)


_is_console = is_console


def validation_errors(where: str, rejection: Rejection) -> list[dict[str, Any]]:
    """A rejection in the shape of FastAPI's 422 body (the documented HTTPValidationError);
    said to the client in Chinese by api.refusals."""
    return [{"loc": [where], "msg": rejection.detail, "type": rejection.reason.value}]


def _u0000_in_url(scope: Mapping[str, Any]) -> str | None:
    """``path`` or ``query`` when U+0000 is in that part of the request's URL (decoded)."""
    if "\x00" in scope.get("path", ""):
        return "path"
    if "\x00" in unquote_plus(scope.get("query_string", b"").decode("latin-1")):
        return "query"
    return None


#: The refusals of a body, in words (the console shows them as a page).
NEEDS_LENGTH = "请求须带 Content-Length（不受理分块传输的正文）"
TOO_BIG = f"请求正文超过 {MAX_BODY_BYTES // 1024} KB 的上限，未予受理"


def _declared_too_big(request: Request) -> Response | None:
    """413 for a body over the limit, from its declared length (chunked bodies: no length,
    refused with 411, so nothing unbounded is read)."""
    if request.method in ("GET", "HEAD", "OPTIONS", "DELETE"):
        return None
    length = request.headers.get("content-length")
    if length is None:
        if request.headers.get("transfer-encoding"):
            return _refused(request, 411, "缺少内容长度", NEEDS_LENGTH)
        return None
    if not length.isdigit() or int(length) > MAX_BODY_BYTES:
        return _refused(request, 413, "内容过大", TOO_BIG)
    return None


def _refused(request: Request, status: int, heading: str, text: str) -> Response:
    if _is_console(request.url.path):
        return console_page(status, heading, [text])
    return JSONResponse({"detail": text}, status_code=status)
