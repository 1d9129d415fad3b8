"""延期申请待审批: the extension requests waiting for the command center, across orders,
the order due first first, each with the time its order has left."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from workorder_pipeline.schemas.records import ExtensionRequestQuery, PendingExtension
from workorder_pipeline.services.ports import ExtensionRequestReads


@dataclass(frozen=True, slots=True)
class WaitingRequest:
    request: PendingExtension
    #: Until the order's due_at, from ``now``; negative once it has passed (the request was
    #: made in time, the decision was not).
    seconds_left: int


def waiting_requests(
    reads: ExtensionRequestReads, query: ExtensionRequestQuery, now: datetime
) -> list[WaitingRequest]:
    return [
        WaitingRequest(request, (request.due_at - now) // timedelta(seconds=1))
        for request in reads.pending_extensions(query)
    ]
