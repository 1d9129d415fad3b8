"""Posting JSON with httpx, the answer classified: what the robots, the SMS gateway and
the webhook share."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from workorder_pipeline.schemas.notifications import AttemptOutcome
from workorder_pipeline.services.notifications import Outgoing, Receipt
from workorder_pipeline.streams.channels.deadline import deadline_for, too_slow

#: An answer is read up to this size: the platforms answer a few hundred bytes, and a
#: receiver claiming (or sending) a gigabyte is not read into memory.
MAX_ANSWER_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any  # parsed JSON, or None when the answer is not JSON


class HttpSender:
    def __init__(self, timeout_s: float) -> None:
        self._timeout = httpx.Timeout(timeout_s)
        #: A request's deadline, from connection to complete answer.
        self.deadline_s = deadline_for(timeout_s)

    async def send(
        self, method: str, url: str, payload: bytes, headers: Mapping[str, str] | None = None
    ) -> Answer | Receipt:
        """The answer, or the Receipt of a failure to get one (unreachable): no answer within
        the deadline, a broken or oversized answer."""
        all_headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        try:
            async with asyncio.timeout(self.deadline_s):
                async with (
                    httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as client,
                    client.stream(method, url, content=payload, headers=all_headers) as response,
                ):
                    raw = await _read_at_most(response, MAX_ANSWER_BYTES)
        except TimeoutError:
            return too_slow()
        except httpx.HTTPError as exc:
            return Receipt(AttemptOutcome.unreachable, None, type(exc).__name__)
        if raw is None:
            detail = f"answer over {MAX_ANSWER_BYTES} bytes"
            return Receipt(AttemptOutcome.unreachable, str(response.status_code), detail)
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, nested past the parser
            body = None
        return Answer(response.status_code, body)


async def _read_at_most(response: httpx.Response, limit: int) -> bytes | None:
    """The body, or None once it passes ``limit`` bytes (whatever Content-Length claims)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():  # decoded: a gzip bomb stops at the limit too
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


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
