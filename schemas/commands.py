"""Commands squads and the command center send about work orders, and the events they cause.

``workorder-command/1`` is the contract of ../shared/contracts.md; ``reason`` (the code of
a return) and ``callback.attempts`` are our documented extensions of it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from schemas.inbound import Id, WireModel
from schemas.times import UtcDatetime
from schemas.workorder import WorkOrderStatus

Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000)]


class CommandAction(StrEnum):
    accept = "accept"
    start = "start"
    feedback = "feedback"
    close = "close"
    return_ = "return"
    reopen = "reopen"
    reassign = "reassign"
    extend = "extend"


#: A signature's refusal is processors.command_signing.SignatureRefusal (never recorded).
class RefusalCode(StrEnum):
    """Why a command was refused: recorded with its command_id, and the API's answer."""

    forbidden = "forbidden"
    unknown_order = "unknown_order"
    invalid_state = "invalid_state"
    no_change = "no_change"
    not_later = "not_later"
    missing_field = "missing_field"
    too_few_officers = "too_few_officers"
    callback_incomplete = "callback_incomplete"
    unknown_unit = "unknown_unit"
    #: Its handling failed alone, for a reason a retry will not change.
    unprocessable = "unprocessable"


class Outcome(StrEnum):
    """What handling a command did."""

    applied = "applied"
    rejected = "rejected"
    #: The command_id was handled before: no second effect.
    duplicate = "duplicate"


class LifecycleEventName(StrEnum):
    """``event`` of a lifecycle message, and the type of its row in the order's history."""

    accepted = "accepted"
    started = "started"
    feedback_submitted = "feedback_submitted"
    closed = "closed"
    returned = "returned"
    rework_requested = "rework_requested"
    reopened = "reopened"
    reassigned = "reassigned"
    extended = "extended"
    command_rejected = "command_rejected"


class OutboxTopic(StrEnum):
    """Where an outbox row goes (resolved to a topic name by the worker)."""

    lifecycle = "lifecycle"
    dispatched = "dispatched"


class Disposition(StrEnum):
    case_filed = "case_filed"  # 立案查处
    rectification_ordered = "rectification_ordered"  # 责令整改
    warning_minor_violation = "warning_minor_violation"  # 轻微违法免罚: education and a warning
    unfounded = "unfounded"  # 查无实据
    transferred = "transferred"  # 移交


class ReturnReason(StrEnum):
    misrouted = "misrouted"
    not_our_jurisdiction = "not_our_jurisdiction"
    duplicate = "duplicate"
    insufficient_information = "insufficient_information"


class CallbackResult(StrEnum):
    satisfied = "satisfied"
    unsatisfied = "unsatisfied"
    unreachable = "unreachable"


class Actor(WireModel):
    unit: Id
    officer_ids: list[Id] = Field(default_factory=list, max_length=50)


class Callback(WireModel):
    """The call back to a complainant before a complaint is closed (件件有回音)."""

    result: CallbackResult
    at: UtcDatetime
    #: How many times the complainant was called (for ``unreachable``).
    attempts: int = Field(default=1, ge=1, le=100)


class WorkOrderCommand(WireModel):
    contract: Literal["workorder-command/1"] = Field(default="workorder-command/1", alias="schema")
    command_id: Id
    work_order_id: Id
    action: CommandAction
    actor: Actor
    at: UtcDatetime
    disposition: Disposition | None = None
    note: Note | None = None
    callback: Callback | None = None
    to_unit: Id | None = None
    new_due_at: UtcDatetime | None = None
    reason: ReturnReason | None = None


class LifecycleEvent(BaseModel):
    """``workorders.lifecycle`` (key: work_order_id), version 1: one per transition or refusal."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    contract: Literal["workorder-lifecycle/1"] = Field(default="workorder-lifecycle/1", alias="schema")
    work_order_id: str
    event: LifecycleEventName
    status: WorkOrderStatus | None = Field(description="Status after the event (null: unknown order)")
    unit: str | None
    due_at: datetime | None
    at: UtcDatetime
    command_id: str | None = None
    actor_unit: str | None = None
    detail: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


class EscalationMessage(BaseModel):
    """``workorders.escalations`` (key: recipient), version 1: a reminder or an escalation.

    Delivery is at least once: ``escalation_id`` identifies it.
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    contract: Literal["workorder-escalation/1"] = Field(default="workorder-escalation/1", alias="schema")
    escalation_id: int
    work_order_id: str
    #: reminder (to the unit), overdue (督办, to the command center), leadership (挂牌督办).
    level: str
    recipient: str
    unit: str
    kind: str
    priority: str
    due_at: UtcDatetime
    fired_at: UtcDatetime
    overdue_seconds: int
