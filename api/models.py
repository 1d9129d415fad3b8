"""The HTTP API's request and response bodies (their OpenAPI schemas)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from workorder_pipeline.schemas.commands import (
    Callback,
    CommandAction,
    Disposition,
    ExtensionAmount,
    RefusalCode,
    ReturnReason,
)
from workorder_pipeline.schemas.inbound import Id
from workorder_pipeline.schemas.notifications import (
    AttemptOutcome,
    ChannelType,
    NotificationLevel,
    NotificationStatus,
)
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.times import UtcDatetime
from workorder_pipeline.schemas.workorder import Priority, WorkOrder


class CommandRequest(BaseModel):
    """A lifecycle command; the acting unit comes from the token, never from the body."""

    model_config = ConfigDict(extra="forbid")

    command_id: Id | None = Field(default=None, description="Unique; a re-sent id has no second effect")
    action: CommandAction
    officer_ids: list[Id] = Field(default_factory=list, max_length=50)
    at: UtcDatetime | None = Field(default=None, description="When it happened (default: now)")
    disposition: Disposition | None = None
    note: Annotated[str, Field(max_length=4000)] | None = None
    callback: Callback | None = None
    to_unit: Id | None = None
    new_due_at: UtcDatetime | None = None
    reason: ReturnReason | None = None
    extension: ExtensionAmount | None = Field(
        default=None,
        description="request_extension: the time asked (working_days or hours); "
        "approve_extension: the time granted (default: all that was asked)",
    )


class AnswerOutcome(StrEnum):
    """A command's outcome as the API answers it, when it is not a refusal code."""

    applied = "applied"
    #: Not decided yet: ask GET /commands/{id}.
    pending = "pending"
    #: The command_id was used for another order.
    command_id_reused = "command_id_reused"
    #: No command with this id was sent through the API or decided (or not one the caller may see).
    unknown_command = "unknown_command"


class CommandResponse(BaseModel):
    command_id: str
    outcome: AnswerOutcome | RefusalCode
    reason: str | None = None
    order: WorkOrder | None = None


class NotificationAttemptOut(BaseModel):
    attempt: int
    channel: ChannelType
    outcome: AttemptOutcome = Field(description="sending until known; interrupted: the worker died mid-send")
    response_code: str | None = Field(description="HTTP status, the robot's errcode or the SMTP reply code")
    detail: str
    started_at: datetime
    finished_at: datetime | None


class NotificationOut(BaseModel):
    """A notification to one receiver (issue 21) and every attempt to send it."""

    id: str
    level: NotificationLevel
    receiver: str
    channel: ChannelType
    round: int = Field(description="0; 1, 2… for repeats while the order stays unresolved")
    status: NotificationStatus
    #: Named ``…_at``, as every time of the API (``wo orders show`` shows them in China time).
    deadline_at: datetime = Field(validation_alias="deadline", description="The deadline it is about")
    created_at: datetime
    next_attempt_at: datetime = Field(
        validation_alias="send_after", description="Next attempt's earliest time (quiet hours, backoff)"
    )
    attempts: int
    sent_at: datetime | None
    failed_at: datetime | None
    attempt_log: list[NotificationAttemptOut]


class OrderDetail(BaseModel):
    order: WorkOrder
    history: list[dict[str, Any]]
    notifications: list[NotificationOut] = []


class PersonalDataReadOut(BaseModel):
    at: datetime
    reader: str
    role: str
    unit: str | None
    work_order_id: str | None = Field(description="The order whose complainant was read")
    route: str
    dead_letter_id: str | None = Field(
        default=None, description="Or the dead letter whose original was read (work_order_id null)"
    )


class Complainant(BaseModel):
    name: str | None = None
    phone: str | None = None


class DeadLetterOriginal(BaseModel):
    """The message a dead letter carries masked, as it was sent."""

    id: str
    topic: str
    partition: int
    offset: int
    key: str | None = Field(description="Base64; null when the message had none")
    value: str | None = Field(description="Base64; null for a tombstone")
    reason: str
    dead_lettered_at: datetime


class FigureOut(BaseModel):
    figure: str = Field(
        description="accepted_on_time, closed, closed_on_time, satisfied, reworked, returned, extended"
    )
    label_zh: str = Field(description="The figure's name, e.g. 办结率")
    numerator: int
    denominator: int
    value: float | None = Field(description="numerator / denominator; null when nothing is judged (0 / 0)")


class UnitFiguresOut(BaseModel):
    unit: str = Field(description='A unit, or "*" for all units together')
    kind: str | None = Field(description="A kind of order; null: every kind")
    score: float | None = Field(description="评分 0-100 (weights: policy/figures.yaml); null: no rate")
    figures: list[FigureOut]


class FiguresOut(BaseModel):
    """A period's cohort: the orders created in it, each counted for the unit holding it now."""

    period: str = Field(description="YYYY-MM (a calendar month in China time)")
    start: datetime = Field(description="First moment of the period (UTC)")
    end: datetime = Field(description="First moment after the period (UTC)")
    computed_at: datetime
    units: list[UnitFiguresOut]


class ExtensionRequestRow(BaseModel):
    """An extension request (延期申请) waiting for the command center."""

    work_order_id: str
    unit: str
    kind: SignalKind
    priority: Priority
    requested_at: UtcDatetime
    working_days: int | None = Field(description="Working days asked (or null when hours were)")
    hours: float | None = Field(description="Hours asked (or null when working days were)")
    reason: str = Field(description="The reason the unit gave")
    due_at: UtcDatetime
    seconds_left: int = Field(description="Until due_at; negative once it has passed")
