"""What the HTTP API reads and records through its port (services.ports.ApiStore), as values
that cross from storage to the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from workorder_pipeline.schemas.commands import RefusalCode
from workorder_pipeline.schemas.inbound import ComplaintCategory
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import Priority, WorkOrder, WorkOrderStatus


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
    #: Any of these statuses (with ``status``: both must hold).
    statuses: tuple[WorkOrderStatus, ...] = ()
    #: An order id, a plate, an enterprise's id, a signal's id (a ticket number), exactly; or
    #: a part of an enterprise's name.
    search: str | None = None
    #: An extension request waits for the command center's decision (or not).
    extension_pending: bool | None = None
    #: Only these orders (e.g. those behind a figure).
    ids: tuple[str, ...] | None = None


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


@dataclass(frozen=True, slots=True)
class ExtensionRequestQuery:
    """Pending extension requests (延期申请待审批) matching every filter given (None: any),
    the order due first first."""

    unit: str | None = None
    kind: SignalKind | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, slots=True)
class PendingExtension:
    """An extension request waiting for the command center, with the order it is about."""

    work_order_id: str
    unit: str
    kind: SignalKind
    priority: Priority
    requested_at: datetime
    #: What was asked: working days or hours (one of them).
    working_days: int | None
    hours: float | None
    #: The reason the unit gave (the request's note).
    reason: str
    due_at: datetime
