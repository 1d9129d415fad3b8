"""What the HTTP API reads and records through its port (services.ports.ApiStore), as values
that cross from storage to the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from schemas.commands import RefusalCode
from schemas.inbound import ComplaintCategory
from schemas.signal import SignalKind
from schemas.workorder import Priority, WorkOrder, WorkOrderStatus


@dataclass(frozen=True, slots=True)
class OrderQuery:
    """Orders matching every filter given (None: any), newest first."""

    #: The unit the orders are assigned to.
    unit: str | None = None
    #: A unit's own orders and those copied to it.
    visible_to: str | None = None
    status: WorkOrderStatus | None = None
    kind: SignalKind | None = None
    priority: Priority | None = None
    #: Open and past due_at (or not).
    overdue: bool | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    category: ComplaintCategory | None = None
    plate: str | None = None
    enterprise_id: str | None = None
    #: Closed in [closed_from, closed_to).
    closed_from: datetime | None = None
    closed_to: datetime | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, slots=True)
class OrderPage:
    """One page of the orders matching a query, and how many match in all."""

    orders: list[WorkOrder]
    total: int


@dataclass(frozen=True, slots=True)
class PersonalDataRead:
    """Who read complainants' personal data, when, on which order, by which route."""

    at: datetime
    reader: str
    role: str
    unit: str | None
    #: The order whose complainant was read (None: a dead letter's original was).
    work_order_id: str | None
    route: str
    dead_letter_id: str | None = None


@dataclass(frozen=True, slots=True)
class DecidedCommand:
    """How the worker decided a command (recorded with its command_id)."""

    command_id: str
    work_order_id: str
    #: None: applied.
    refusal: RefusalCode | None
    #: The refusal's reason; for an applied command, its lifecycle event.
    reason: str | None
