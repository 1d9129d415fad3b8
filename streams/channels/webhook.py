"""A generic JSON webhook. The body is signed: ``X-WO-Signature: sha256=<hex>``, the
HMAC-SHA256 of ``<X-WO-Timestamp>.<body>`` keyed with the receiver's secret (the timestamp,
Unix seconds, lets the receiver refuse a replay). ``X-WO-Notification-Id`` lets it drop a
repeat (delivery is at least once)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from datetime import datetime

from workorder_pipeline.schemas.notifications import AttemptOutcome, WebhookReceiver
from workorder_pipeline.services.notifications import Outgoing, Receipt
from workorder_pipeline.streams.channels.http import HttpSender, by_status, dumps, missing, wrong_channel

CONTRACT = "workorder-notification/1"


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookChannel:
    def __init__(self, http: HttpSender, environ: Mapping[str, str], clock: Callable[[], datetime]) -> None:
        self._http = http
        self._environ = environ
        self._clock = clock

    async def send(self, message: Outgoing) -> Receipt:
        via = message.receiver.via
        if not isinstance(via, WebhookReceiver):
            return wrong_channel(message)
        secret = self._environ.get(via.secret_env)
        if not secret:
            return missing(via.secret_env)
        body = dumps(
            {
                "schema": CONTRACT,
                "notification_id": message.notification_id,
                "work_order_id": message.work_order_id,
                "level": message.level.value,
                "title": message.text.title,
                "text": message.text.text,
            }
        )
        timestamp = str(int(self._clock().timestamp()))
        headers = {
            "X-WO-Timestamp": timestamp,
            "X-WO-Signature": webhook_signature(secret, timestamp, body),
            "X-WO-Notification-Id": message.notification_id,
        }
        answer = await self._http.send("POST", str(via.url), body, headers)
        if isinstance(answer, Receipt):
            return answer
        return by_status(answer) or Receipt(AttemptOutcome.delivered, str(answer.status), "ok")
