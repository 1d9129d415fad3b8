"""The channels' deadlines, one rule for all of them.

An exchange (one HTTP request, one SMTP conversation) ends by ``deadline_for(timeout_s)``:
a per-read timeout alone lets a receiver that trickles its answer a byte at a time hold
the channel for ever. A whole send, of however many exchanges (SMS: one per phone), ends
by the notification's lease less one exchange's deadline (``send_deadline``): past the
lease another worker may claim the notification and send it again, and the time kept
back records the result. So an exchange starts only if its own deadline falls by then
(``may_start``); what is not tried is a failure of this attempt, retried."""

from __future__ import annotations

import time

from workorder_pipeline.schemas.notifications import AttemptOutcome
from workorder_pipeline.services.notifications import Outgoing, Receipt

#: An attempt's detail when an exchange's deadline passed.
TOO_SLOW = "no complete answer in time"
#: An attempt's detail for a recipient left to the next attempt (the send's deadline came).
NOT_TRIED = "not tried by the send's deadline"


def deadline_for(timeout_s: float) -> float:
    """The deadline of one exchange (connect, request, complete answer) of a channel whose
    single waits are bounded by ``timeout_s``."""
    return 2 * timeout_s


def send_deadline(lease_ends: float, exchange_s: float) -> float:
    """When a whole send ends, for exchanges of deadline ``exchange_s``: one exchange's
    time before its lease ends (the same clock as ``lease_ends``)."""
    return lease_ends - exchange_s


def may_start(message: Outgoing, exchange_s: float) -> bool:
    """Whether an exchange started now ends (at its own deadline) by the send's deadline."""
    return time.monotonic() + exchange_s <= send_deadline(message.lease_ends, exchange_s)


def too_slow() -> Receipt:
    return Receipt(AttemptOutcome.unreachable, None, TOO_SLOW)


def not_tried() -> Receipt:
    return Receipt(AttemptOutcome.unreachable, None, NOT_TRIED)
