"""The HTTP API: list and read work orders, send lifecycle commands.

Every route but /healthz needs a bearer token. A squad sees and acts on the orders assigned
to it and reads those copied to it (抄送); any other order answers exactly as one that does
not exist (404), so the answer tells nobody which ids exist. The command center and
supervisors read everything; supervisors act on nothing. A command is put on ``workorders.commands`` like
any squad system's and decided by the worker's command handler; the API waits for its
verdict (or answers 202 when it takes longer), so both ways in behave the same.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI

from workorder_pipeline.api import refusals
from workorder_pipeline.api.auth import Tokens
from workorder_pipeline.api.console import mount_console
from workorder_pipeline.api.console.session import ConsoleParts
from workorder_pipeline.api.deps import Parts
from workorder_pipeline.api.docs import serve_docs
from workorder_pipeline.api.guard import AuthFailures, guard
from workorder_pipeline.api.routes import (
    commands,
    dead_letters,
    extension_requests,
    figures,
    health,
    orders,
    personal_data,
)
from workorder_pipeline.api.routes import reports as reports_routes
from workorder_pipeline.schemas.figures import ScoreWeights
from workorder_pipeline.services.clock import utc_now
from workorder_pipeline.services.ports import ApiStore, CommandPublisher
from workorder_pipeline.services.report_archive import MonthlyReports


def create_app(
    store: ApiStore,
    tokens: Tokens,
    publisher: CommandPublisher,
    wait_s: float = 10.0,
    clock: Callable[[], datetime] = utc_now,
    weights: ScoreWeights | None = None,
    console: ConsoleParts | None = None,
    reports: MonthlyReports | None = None,
) -> FastAPI:
    """The API on ``store`` (what it reads and records) and ``publisher`` (where its commands go);
    with ``console``, the web console under /console too."""
    app = FastAPI(
        title="Work orders of the transport law-enforcement command center",
        version="1.0.0",
        description=__doc__,
        responses={401: {"description": "No valid bearer token"}},
        docs_url=None,  # served by api.docs, without a CDN
        redoc_url=None,
    )
    serve_docs(app)
    guard(app)
    app.state.tokens = tokens
    app.state.auth_failures = AuthFailures()
    app.state.parts = Parts(store, publisher, clock, wait_s, weights or ScoreWeights(), reports)
    # In this order, so the OpenAPI document lists the paths as it always has.
    for module in (
        health,
        orders,
        personal_data,
        commands,
        dead_letters,
        figures,
        extension_requests,
        reports_routes,
    ):
        app.include_router(module.router)
    refusals.install(app)
    if console is not None:
        mount_console(app, console)
    return app
