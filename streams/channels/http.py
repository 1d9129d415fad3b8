"""Posting JSON with httpx, the answer classified: what the robots, the SMS gateway and
the webhook share."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from workorder_pipeline.schemas.notifications import AttemptOutcome
from workorder_pipeline.services.notifications import Outgoing, Receipt


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any  # parsed JSON, or None when the answer is not JSON


class HttpSender:
    def __init__(self, timeout_s: float) -> None:
        self._timeout = httpx.Timeout(timeout_s)

    async def send(
        self, method: str, url: str, payload: bytes, headers: Mapping[str, str] | None = None
    ) -> Answer | Receipt:
        """The answer, or the Receipt of a failure to get one (unreachable)."""
        all_headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        try:
            async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as client:
                response = await client.request(method, url, content=payload, headers=all_headers)
        except httpx.HTTPError as exc:
            return Receipt(AttemptOutcome.unreachable, None, type(exc).__name__)
        try:
            body = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        return Answer(response.status_code, body)


def by_status(answer: Answer) -> Receipt | None:
    """The failure an HTTP status says (5xx and 429 are worth retrying); None for 2xx."""
    code = str(answer.status)
    if answer.status >= 500 or answer.status == 429:
        return Receipt(AttemptOutcome.unreachable, code, "server error")
    if not 200 <= answer.status < 300:
        return Receipt(AttemptOutcome.rejected, code, "refused")
    return None


def dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def missing(name: str) -> Receipt:
    return Receipt(AttemptOutcome.misconfigured, None, f"environment variable {name} is not set")


def wrong_channel(message: Outgoing) -> Receipt:
    """A receiver handed to another channel's transport: a wiring bug, never sent."""
    return Receipt(
        AttemptOutcome.misconfigured, None, f"receiver {message.receiver.id} is not of this channel"
    )
