"""What every route may ask for: the caller (from the bearer token) and the API's parts
(the store, the publisher, the clock), set on the app by ``api.app.create_app``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from workorder_pipeline.api.auth import Principal, Tokens
from workorder_pipeline.api.guard import AuthFailures
from workorder_pipeline.schemas.figures import ScoreWeights
from workorder_pipeline.services.ports import ApiStore, CommandPublisher
from workorder_pipeline.services.report_archive import MonthlyReports


@dataclass(frozen=True, slots=True)
class Parts:
    store: ApiStore
    publisher: CommandPublisher
    clock: Callable[[], datetime]
    #: How long a command's sender waits for its verdict before the answer is 202.
    wait_s: float
    #: The figures' score weights (policy/figures.yaml).
    weights: ScoreWeights
    #: The monthly reports (None: this API serves none).
    reports: MonthlyReports | None = None


def _parts(request: Request) -> Parts:
    parts: Parts = request.app.state.parts
    return parts


_bearer = HTTPBearer(auto_error=False)


def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The caller, from the bearer token; 401 without a valid one (unknown, expired, revoked),
    429 for an address that presented too many bad ones lately."""
    failures: AuthFailures = request.app.state.auth_failures
    address = request.client.host if request.client else "unknown"
    wait_s = failures.retry_after_s(address)
    if wait_s:
        raise HTTPException(
            429, "该地址近期出示无效令牌过多，请稍后再试", headers={"Retry-After": str(wait_s)}
        )
    tokens: Tokens = request.app.state.tokens
    now = _parts(request).clock()
    found = tokens.principal(credentials.credentials, now) if credentials else None
    if found is None:
        failures.record(address)
        raise HTTPException(401, "需要有效的令牌（Bearer）", headers={"WWW-Authenticate": "Bearer"})
    return found


#: Module level, so FastAPI can resolve them from the route functions' annotations.
Caller = Annotated[Principal, Depends(current_principal)]
Api = Annotated[Parts, Depends(_parts)]
