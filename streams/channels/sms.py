"""An SMS gateway through a configured HTTP request: the body is the policy's JSON
template with ``{text}``, ``{phone}`` and the credentials filled in (JSON-escaped, as
values of the structure, never spliced into text), one request per phone; the policy's
success check says whether the gateway took it. Each phone the gateway took is recorded
before the next is sent (``Outgoing.delivered``); a phone it did not take does not stop
the others, and a retry (or another worker after a crash) sends only to the phones that
do not have it. A phone is tried only while its request would end by the send's deadline
(deadline.may_start: the requests one after another would outlast the lease); the phones
left are failures of this attempt like one the gateway did not take, and retried so."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from workorder_pipeline.schemas.notifications import AttemptOutcome, SmsReceiver
from workorder_pipeline.services.notifications import Outgoing, Receipt, recipient_key
from workorder_pipeline.streams.channels.deadline import may_start, not_tried
from workorder_pipeline.streams.channels.http import (
    Answer,
    HttpSender,
    by_status,
    dumps,
    missing,
    wrong_channel,
)

_PLACEHOLDER = re.compile(r"\{([a-z0-9_.\-]+)\}")


def fill(template: Any, values: Mapping[str, str]) -> Any:
    """``template`` with every ``{name}`` in its strings replaced."""
    if isinstance(template, str):
        return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)
    if isinstance(template, dict):
        return {key: fill(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [fill(value, values) for value in template]
    return template


def accepted(via: SmsReceiver, answer: Answer) -> Receipt:
    code = str(answer.status)
    if answer.status not in via.success.status:
        failed = by_status(answer)
        return failed or Receipt(AttemptOutcome.rejected, code, "status not in the success check")
    field = via.success.json_field
    if field is None:
        return Receipt(AttemptOutcome.delivered, code, "ok")
    value = answer.body.get(field) if isinstance(answer.body, dict) else None
    if value is not None and str(value) == str(via.success.equals):
        return Receipt(AttemptOutcome.delivered, str(value), "ok")
    return Receipt(
        AttemptOutcome.rejected,
        None if value is None else str(value)[:32],
        f"{field} is not the success value",
    )


class SmsChannel:
    def __init__(self, http: HttpSender, environ: Mapping[str, str]) -> None:
        self._http = http
        self._environ = environ

    async def send(self, message: Outgoing) -> Receipt:
        via = message.receiver.via
        if not isinstance(via, SmsReceiver):
            return wrong_channel(message)
        values = {"text": message.text.text}
        for name, variable in via.credentials.items():
            secret = self._environ.get(variable)
            if not secret:
                return missing(variable)
            values[name] = secret
        failures: list[Receipt] = []
        taken = Receipt(AttemptOutcome.delivered, None, "every phone had it already")
        # A phone listed twice is one recipient.
        waiting = [p for p in dict.fromkeys(via.phones) if recipient_key(p) not in message.already]
        for phone in waiting:
            if not may_start(message, self._http.deadline_s):
                failures.append(not_tried())
                continue
            filled = {**values, "phone": phone}
            headers = {key: fill(value, filled) for key, value in via.headers.items()}
            answer = await self._http.send(via.method, str(via.url), dumps(fill(via.body, filled)), headers)
            receipt = answer if isinstance(answer, Receipt) else accepted(via, answer)
            if receipt.outcome is AttemptOutcome.delivered:
                await message.delivered(recipient_key(phone))
                taken = receipt
            else:
                failures.append(receipt)
        if not failures:
            return taken
        return _failed(failures, len(waiting))


def _failed(failures: list[Receipt], phones: int) -> Receipt:
    """One receipt for the phones that do not have it: the first failure's outcome and
    code, how many phones failed for each reason."""
    reasons = ", ".join(f"{detail} ({n})" for detail, n in Counter(f.detail for f in failures).items())
    return replace(failures[0], detail=f"{len(failures)} of {phones} phones: {reasons}"[:300])
