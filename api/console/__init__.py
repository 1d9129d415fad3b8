"""The web console (/console): the squads, the command center and the administrators at
work in a browser, in Simplified Chinese, times in China time. Served by the API's app,
on the API's store and command publisher; officers sign in with their own accounts
(services/officers.py) and have the API's rights (api/auth.OFFICER_RIGHTS)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from workorder_pipeline.api.console import (
    routes_admin,
    routes_auth,
    routes_center,
    routes_figures,
    routes_orders,
    routes_reports,
)
from workorder_pipeline.api.console.render import error_page
from workorder_pipeline.api.console.session import ConsoleError, ConsoleParts, NotSignedIn

STATIC = Path(__file__).parent / "static"


def mount_console(app: FastAPI, parts: ConsoleParts) -> None:
    app.state.console = parts
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    for module in (
        routes_auth,
        routes_orders,
        routes_center,
        routes_figures,
        routes_reports,
        routes_admin,
    ):
        app.include_router(module.router)
    app.add_exception_handler(NotSignedIn, _sign_in_first)
    app.add_exception_handler(ConsoleError, _console_error)


async def _sign_in_first(_: Request, __: Exception) -> Response:
    return RedirectResponse("/console/login", status_code=303)


async def _console_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConsoleError)
    return error_page(request, request.app.state.console, exc.who, exc.status, exc.detail)
