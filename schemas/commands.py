"""Commands squads and the command center send about work orders, and the events they cause.

``workorder-command/1`` is the contract of ../shared/contracts.md; ``reason`` (the code of
a return), ``callback.attempts`` and ``actor.officer_id`` are our documented extensions of it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from workorder_pipeline.schemas.inbound import Id, WireModel
from workorder_pipeline.schemas.times import UtcDatetime
from workorder_pipeline.schemas.workorder import WorkOrderStatus

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
    #: 延期申请: the unit asks for more time, before due_at.
    request_extension = "request_extension"
    approve_extension = "approve_extension"
    reject_extension = "reject_extension"


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
    #: An extension asked for at or after due_at.
    too_late = "too_late"
    extension_pending = "extension_pending"
    no_extension_pending = "no_extension_pending"
    #: Beyond the policy's number of requests or total extension.
    over_limit = "over_limit"
    #: An approval granting more, or in another unit, than was asked.
    exceeds_request = "exceeds_request"
    #: A return reason the policy does not list.
    reason_not_allowed = "reason_not_allowed"
    #: A reopened or reworked order closes only after new feedback.
    needs_new_feedback = "needs_new_feedback"
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
    extension_requested = "extension_requested"
    extension_approved = "extension_approved"
    extension_rejected = "extension_rejected"
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
    """退单 reason codes of practice; which of them units may use is policy (lifecycle.yaml).
    The vocabulary is fixed in code because figures and metrics count returns by it."""

    not_our_jurisdiction = "not_our_jurisdiction"  # 属地不符
    unclear_ownership = "unclear_ownership"  # 权属不清
    overlapping_duties = "overlapping_duties"  # 职能交叉
    insufficient_information = "insufficient_information"  # 信息不全
    duplicate = "duplicate"  # 重复
    misrouted = "misrouted"  # 派发错误: kept, commands already use it


class CallbackResult(StrEnum):
    satisfied = "satisfied"  # 满意
    basically_satisfied = "basically_satisfied"  # 基本满意
    unsatisfied = "unsatisfied"  # 不满意: sent back for rework (重办)
    unreachable = "unreachable"


class Actor(WireModel):
    unit: Id
    officer_ids: list[Id] = Field(default_factory=list, max_length=50)
    #: Our extension: the officer who sent the command (signed in to the web console), named
    #: in the order's history as the one who acted for the unit.
    officer_id: Id | None = None


class Callback(WireModel):
    """The call back to a complainant before a complaint is closed (件件有回音)."""

    result: CallbackResult
    at: UtcDatetime
    #: How many times the complainant was called (for ``unreachable``).
    attempts: int = Field(default=1, ge=1, le=100)


class ExtensionAmount(WireModel):
    """How much more time: working days on the official calendar, or hours of the clock."""

    working_days: int | None = Field(default=None, ge=1, le=366)
    hours: float | None = Field(default=None, gt=0, le=24 * 366)

    @model_validator(mode="after")
    def _exactly_one_unit(self) -> ExtensionAmount:
        if (self.hours is None) == (self.working_days is None):
            raise ValueError("give either 'hours' or 'working_days'")
        return self


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
    #: request_extension: what the unit asks; approve_extension: what is granted (default: all asked).
    extension: ExtensionAmount | None = None


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


class EscalationLevel(StrEnum):
    """The ``level`` of an escalation message (processors/escalation decides which is due)."""

    reminder = "reminder"
    overdue = "overdue"
    leadership = "leadership"
    #: 签收时限 (processors/clocks.py): a reminder before it, to the unit; overdue, to the command center.
    accept_reminder = "accept_reminder"
    accept_overdue = "accept_overdue"
    #: The command center did not re-route a returned order in time: to leadership.
    reroute_overdue = "reroute_overdue"
    #: Cards (processors/cards.py): marks on the unit, counted in its assessment.
    yellow_card = "yellow_card"
    red_card = "red_card"
    #: Sent back for rework the policy's number of times (提级督办).
    rework_escalated = "rework_escalated"


class EscalationMessage(BaseModel):
    """``workorders.escalations`` (key: recipient), version 1: a reminder or an escalation.

    Delivery is at least once: ``escalation_id`` identifies it.
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    contract: Literal["workorder-escalation/1"] = Field(default="workorder-escalation/1", alias="schema")
    escalation_id: int
    work_order_id: str
    #: processors.escalation.EscalationLevel: reminder (to the unit), overdue (督办, to the
    #: command center), leadership (挂牌督办), and the workflow's: accept_reminder,
    #: accept_overdue, reroute_overdue, yellow_card, red_card, rework_escalated.
    level: str
    recipient: str
    unit: str
    kind: str
    priority: str
    due_at: UtcDatetime
    fired_at: UtcDatetime
    overdue_seconds: int
