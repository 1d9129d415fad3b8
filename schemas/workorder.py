"""Work orders: the domain record and the message squads consume."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import to_json

from workorder_pipeline.schemas.inbound import ComplaintCategory
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.times import UtcDatetime

#: The command center's own queue: where anything no route claims goes.
COMMAND_CENTER = "command-center"


class Priority(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"


class WorkOrderStatus(StrEnum):
    registered = "registered"
    dispatched = "dispatched"
    accepted = "accepted"
    in_progress = "in_progress"
    feedback_submitted = "feedback_submitted"
    returned = "returned"
    closed = "closed"


class PipelineEventName(StrEnum):
    """The type of a row the pipeline writes in an order's history (commands write
    schemas.commands.LifecycleEventName)."""

    registered = "registered"
    merged = "merged"
    dispatched = "dispatched"
    reminder_sent = "reminder_sent"
    escalated = "escalated"
    deadline_changed = "deadline_changed"


#: Who the pipeline's own rows of an order's history name as their actor.
PIPELINE_ACTOR = "pipeline"


@dataclass(frozen=True, slots=True)
class Occurrences:
    """Signals merged into one order: how many, and when the first and the last occurred."""

    count: int
    first_seen_at: datetime
    last_seen_at: datetime


class Subject(BaseModel):
    """Who or what the order is about."""

    model_config = ConfigDict(frozen=True)

    plate: str | None = None
    enterprise_id: str | None = None
    enterprise_name: str | None = None
    region_code: str | None = None
    place: str | None = None


class WorkOrder(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    kind: SignalKind
    status: WorkOrderStatus
    unit: str
    priority: Priority
    route_key: str
    created_at: datetime
    due_at: datetime
    subject: Subject
    summary: str
    source_ids: tuple[str, ...]
    occurrences: int = 1
    first_seen_at: datetime
    last_seen_at: datetime
    upstream_due_at: datetime | None = None
    #: The deadline counts days of a year with no official schedule yet: recomputed when it comes.
    deadline_provisional: bool = False
    #: The time limit in working days, when the policy gave one (kept to recompute the deadline).
    working_days: int | None = None
    #: Signals with this key merge into the order while it is open (triage policy).
    dedupe_key: str | None = None
    #: e.g. warning_minor_violation for a first minor violation (轻微违法免罚).
    suggested_disposition: str | None = None
    #: What "first minor violation?" checks count this order under.
    violation_key: str | None = None
    #: Other open orders on the same plate or enterprise when this one was opened.
    related_ids: tuple[str, ...] = ()
    #: Units that get a copy for their information (抄送); ``unit`` is responsible.
    copied_to: tuple[str, ...] = ()
    # The lifecycle (see processors/lifecycle.py).
    accepted_at: datetime | None = None
    first_feedback_at: datetime | None = None
    closed_at: datetime | None = None
    disposition: str | None = None
    closed_on_time: bool | None = None
    reopen_count: int = 0
    returned_seconds: float = 0.0
    #: 签收时限: when the unit must accept it (restarts on reassignment); None: no clock.
    accept_due_at: datetime | None = None
    #: Sent back to be done again (重办): rework asked, unsatisfied complainant, reopened.
    rework_count: int = 0
    #: 延期申请: requests made, the one waiting (working days or hours), granted in all.
    extension_requests: int = 0
    pending_extension_days: int | None = None
    pending_extension_hours: float | None = None
    extension_requested_at: datetime | None = None
    extended_working_days: int = 0
    extended_hours: float = 0.0
    #: A complaint's category (投诉类别), from its first signal; None for other kinds.
    category: ComplaintCategory | None = None

    def dispatch_json(self) -> bytes:
        """``dispatch_message()``'s JSON (by alias), the same bytes, built without the model:
        validating it cost about as much as writing it, for values this order already holds
        validated. An order the fast path cannot vouch for takes the model's way (and its errors)."""
        times = _utc_times(self.due_at, self.created_at, self.first_seen_at, self.last_seen_at)
        later = _utc_times(self.upstream_due_at, self.accept_due_at)
        if times is None or later is None or self.occurrences < 1 or type(self.occurrences) is not int:
            return self.dispatch_message().model_dump_json(by_alias=True).encode()
        due_at, created_at, first_seen_at, last_seen_at = times
        upstream_due_at, accept_due_at = later
        return to_json(
            {
                "schema": "workorder-dispatched/1",
                "work_order_id": self.id,
                "squad": self.unit,
                "kind": self.kind.value,
                "priority": self.priority.value,
                "due_at": due_at,
                "created_at": created_at,
                "source_ids": list(self.source_ids),
                "occurrences": self.occurrences,
                "first_seen_at": first_seen_at,
                "last_seen_at": last_seen_at,
                "summary": self.summary,
                "subject": self.subject,
                "route_key": self.route_key,
                "upstream_due_at": upstream_due_at,
                "deadline_provisional": self.deadline_provisional,
                "suggested_disposition": self.suggested_disposition,
                "related_work_order_ids": list(self.related_ids),
                "copied_to": list(self.copied_to),
                "accept_due_at": accept_due_at,
            }
        )

    def dispatch_message(self) -> DispatchedWorkOrder:
        return DispatchedWorkOrder(
            work_order_id=self.id,
            squad=self.unit,
            kind=self.kind,
            priority=self.priority,
            due_at=self.due_at,
            created_at=self.created_at,
            source_ids=list(self.source_ids),
            occurrences=self.occurrences,
            first_seen_at=self.first_seen_at,
            last_seen_at=self.last_seen_at,
            summary=self.summary,
            subject=self.subject,
            route_key=self.route_key,
            upstream_due_at=self.upstream_due_at,
            deadline_provisional=self.deadline_provisional,
            suggested_disposition=self.suggested_disposition,
            related_work_order_ids=list(self.related_ids),
            copied_to=list(self.copied_to),
            accept_due_at=self.accept_due_at,
        )


def _utc_times(*moments: datetime | None) -> list[datetime | None] | None:
    """Each time in UTC as ``UtcDatetime`` makes it; None if one is not aware or has no UTC
    equivalent (the model's validation then says why)."""
    converted: list[datetime | None] = []
    for moment in moments:
        if moment is None or (moment.tzinfo is UTC and type(moment) is datetime):
            converted.append(moment)  # most are UTC already
        elif type(moment) is not datetime or moment.utcoffset() is None:
            return None
        else:
            try:
                converted.append(moment.astimezone(UTC))
            except OverflowError:
                return None
    return converted


class DispatchedWorkOrder(BaseModel):
    """``workorders.dispatched`` (key: squad id), version 1. See docs/workorders-dispatched.md.

    Personal data (a complainant's name and phone) is never in this message: squads
    read it through the work-order API, which checks who is asking.
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    contract: Literal["workorder-dispatched/1"] = Field(default="workorder-dispatched/1", alias="schema")
    work_order_id: str
    squad: str = Field(description="Unit the order is assigned to: a squad id or command-center")
    kind: SignalKind
    priority: Priority
    due_at: UtcDatetime
    created_at: UtcDatetime
    source_ids: list[str] = Field(description="Every publisher id merged into the order")
    occurrences: int = Field(ge=1)
    first_seen_at: UtcDatetime
    last_seen_at: UtcDatetime
    summary: str
    subject: Subject
    route_key: str = Field(description="Stable key of the routing rule that chose the squad")
    upstream_due_at: UtcDatetime | None = Field(
        default=None, description="Complaints: the upstream ticket's deadline"
    )
    deadline_provisional: bool = Field(
        default=False,
        description="due_at counts days of a year with no official holiday schedule yet; "
        "it is recomputed (and the order re-published) when the schedule is loaded",
    )
    suggested_disposition: str | None = Field(
        default=None,
        description="warning_minor_violation for a first minor violation (轻微违法免罚); else null",
    )
    related_work_order_ids: list[str] = Field(
        default_factory=list, description="Open orders on the same plate or enterprise"
    )
    copied_to: list[str] = Field(
        default_factory=list,
        description="Units that get a copy for information (抄送); the message is also published "
        "keyed by each of them. `squad` is the unit responsible.",
    )
    accept_due_at: UtcDatetime | None = Field(
        default=None,
        description="When the squad must accept the order (签收时限; it restarts on reassignment); "
        "null or absent when the policy sets no acceptance limit",
    )
