"""What the state machine (processors/lifecycle.py) reads of an order, and what it answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from typing import Any

from workorder_pipeline.processors.calendar import DEFAULT_CUTOFF, WorkCalendar
from workorder_pipeline.processors.command_signing import SignatureRefusal
from workorder_pipeline.schemas.commands import ExtensionAmount, LifecycleEventName, RefusalCode
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workflow import AcceptanceLimits
from workorder_pipeline.schemas.workorder import Priority, WorkOrderStatus


@dataclass(frozen=True, slots=True)
class OrderState:
    """What the state machine needs to know of an order (field names are the stored columns')."""

    id: str
    kind: SignalKind
    priority: Priority
    status: WorkOrderStatus
    unit: str
    due_at: datetime
    known_units: frozenset[str]
    disposition: str | None = None
    accepted_at: datetime | None = None
    first_feedback_at: datetime | None = None
    returned_at: datetime | None = None
    returned_seconds: float = 0.0
    reopen_count: int = 0
    #: Every send-back to do it again (重办): rework asked, unsatisfied callback, reopen.
    rework_count: int = 0
    deadline_provisional: bool = False
    working_days: int | None = None
    accept_due_at: datetime | None = None
    #: 延期申请: how many were made, the pending one, and what was granted in all.
    extension_requests: int = 0
    pending_extension_days: int | None = None
    pending_extension_hours: float | None = None
    extension_requested_at: datetime | None = None
    extended_working_days: int = 0
    extended_hours: float = 0.0

    @property
    def pending_extension(self) -> ExtensionAmount | None:
        if self.pending_extension_days is None and self.pending_extension_hours is None:
            return None
        return ExtensionAmount(working_days=self.pending_extension_days, hours=self.pending_extension_hours)

    @property
    def sent_back(self) -> bool:
        """It had feedback, or was reopened or reworked: it closes only after new feedback."""
        return self.first_feedback_at is not None or self.reopen_count > 0 or self.rework_count > 0


@dataclass(frozen=True, slots=True)
class Clocks:
    """The calendar and clocks some decisions count on (an approved extension in working
    days, the acceptance clock restarted on reassignment). Without acceptance limits no
    acceptance deadline is set."""

    calendar: WorkCalendar = field(default_factory=WorkCalendar)
    acceptance: AcceptanceLimits | None = None
    cutoff: time = DEFAULT_CUTOFF


@dataclass(frozen=True, slots=True)
class Transition:
    event: LifecycleEventName
    #: Column values to set on the order.
    changes: dict[str, Any]
    #: Audit detail (no personal data).
    detail: dict[str, Any] = field(default_factory=dict)
    #: The order must be published again to its (new) unit.
    redispatch: bool = False
    #: Sent back for rework the policy's number of times: raised to leadership (提级督办).
    raise_to_leadership: bool = False

    @property
    def status(self) -> WorkOrderStatus:
        status = self.changes["status"]
        assert isinstance(status, WorkOrderStatus)
        return status


@dataclass(frozen=True, slots=True)
class Refusal:
    code: RefusalCode | SignatureRefusal
    reason: str
