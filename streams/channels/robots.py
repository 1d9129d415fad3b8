"""WeCom (企业微信) and DingTalk (钉钉) group robots.

Both answer HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}`` when they took the message;
any other errcode is a refusal, even under HTTP 200 (e.g. DingTalk 310000 "sign not
match", WeCom 93000 an invalid key), except the rate limits (WeCom 45009, DingTalk
130101: about 20 messages a minute per robot), which are retried like an outage.

DingTalk's signed webhook ("加签"): ``timestamp`` in milliseconds; ``sign`` is the HMAC-SHA256
of ``timestamp + "\\n" + secret`` keyed with the secret, base64-encoded, then URL-encoded,
appended as ``&timestamp=…&sign=…``; the platform refuses a timestamp an hour off."""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from workorder_pipeline.schemas.notifications import AttemptOutcome, DingtalkReceiver, WecomReceiver
from workorder_pipeline.services.notifications import Outgoing, Receipt
from workorder_pipeline.streams.channels.http import (
    Answer,
    HttpSender,
    by_status,
    dumps,
    missing,
    wrong_channel,
)

RATE_LIMITED = frozenset({45009, 130101})


def dingtalk_sign(timestamp_ms: int, secret: str) -> str:
    """The ``sign`` query value, URL-encoded."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest))


def robot_receipt(answer: Answer | Receipt) -> Receipt:
    if isinstance(answer, Receipt):
        return answer
    failed = by_status(answer)
    if failed is not None:
        return failed
    body = answer.body if isinstance(answer.body, dict) else {}
    errcode = body.get("errcode")
    if errcode == 0:
        return Receipt(AttemptOutcome.delivered, "0", "ok")
    detail = str(body.get("errmsg", "no errcode in the answer"))[:200]
    outcome = AttemptOutcome.unreachable if errcode in RATE_LIMITED else AttemptOutcome.rejected
    return Receipt(outcome, None if errcode is None else str(errcode), detail)


class WecomChannel:
    def __init__(self, http: HttpSender, environ: Mapping[str, str]) -> None:
        self._http = http
        self._environ = environ

    async def send(self, message: Outgoing) -> Receipt:
        via = message.receiver.via
        if not isinstance(via, WecomReceiver):
            return wrong_channel(message)
        url = self._environ.get(via.url_env)
        if not url:
            return missing(via.url_env)
        payload: dict[str, Any]
        if via.msgtype == "markdown":
            payload = {"msgtype": "markdown", "markdown": {"content": message.text.markdown}}
        else:
            payload = {"msgtype": "text", "text": {"content": message.text.text}}
        return robot_receipt(await self._http.send("POST", url, dumps(payload)))


class DingtalkChannel:
    def __init__(self, http: HttpSender, environ: Mapping[str, str], clock: Callable[[], datetime]) -> None:
        self._http = http
        self._environ = environ
        self._clock = clock

    async def send(self, message: Outgoing) -> Receipt:
        via = message.receiver.via
        if not isinstance(via, DingtalkReceiver):
            return wrong_channel(message)
        url, secret = self._environ.get(via.url_env), self._environ.get(via.secret_env)
        if not url:
            return missing(via.url_env)
        if not secret:
            return missing(via.secret_env)
        timestamp = int(self._clock().timestamp() * 1000)
        separator = "&" if "?" in url else "?"
        signed = f"{url}{separator}timestamp={timestamp}&sign={dingtalk_sign(timestamp, secret)}"
        payload: dict[str, Any]
        if via.msgtype == "markdown":
            payload = {
                "msgtype": "markdown",
                "markdown": {"title": message.text.title, "text": message.text.markdown},
            }
        else:
            payload = {"msgtype": "text", "text": {"content": message.text.text}}
        return robot_receipt(await self._http.send("POST", signed, dumps(payload)))
