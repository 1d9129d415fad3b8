"""``policy/notifications.yaml``: who is told of what, through which channel, and when.

Only shape and cross-references are checked here; the routing itself is
``processors.notify_routing`` and delivery is ``services.notifications``. Secrets (robot
keys, SMTP passwords, HMAC keys, SMS credentials) are never in the file: a receiver names
the environment variables that hold them.
"""

from __future__ import annotations

import re
from datetime import time
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import Priority

Key = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.\-]*$", max_length=64)]
#: An environment variable's name: what a secret is referenced by.
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]*$", max_length=128)]


class NotificationLevel(StrEnum):
    """What a notification is about (routes match on it)."""

    reminder = "reminder"
    yellow = "yellow"
    red = "red"
    overdue = "overdue"
    leadership = "leadership"
    acceptance_overdue = "acceptance_overdue"
    new_urgent_order = "new_urgent_order"
    extension_decided = "extension_decided"
    #: A notification that could not be delivered after the policy's attempts: to the
    #: command center's receiver.
    delivery_failed = "delivery_failed"


class NotificationStatus(StrEnum):
    pending = "pending"
    sent = "sent"
    #: The policy's attempts ran out: the command center's receiver is told.
    failed = "failed"


class AttemptOutcome(StrEnum):
    """An attempt's result (``outcome`` label of wo_notifications_total)."""

    #: Recorded before the send: still so after a crash, it becomes ``interrupted``.
    sending = "sending"
    delivered = "delivered"
    #: The platform answered and refused (HTTP 4xx, a robot's errcode other than 0, an SMTP 5xx).
    rejected = "rejected"
    #: No answer, a timeout, HTTP 5xx, an SMTP 4xx.
    unreachable = "unreachable"
    #: A secret's environment variable is not set.
    misconfigured = "misconfigured"
    #: The worker died mid-send: the platform may or may not have it (at least once).
    interrupted = "interrupted"
    #: Not an attempt: the attempts ran out, the notification is failed.
    gave_up = "gave_up"


class ChannelType(StrEnum):
    wecom = "wecom"
    dingtalk = "dingtalk"
    sms = "sms"
    email = "email"
    webhook = "webhook"


class NotifyModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QuietHours(NotifyModel):
    """China Standard Time; ``start`` after ``end`` spans midnight (22:00 to 07:00)."""

    start: time
    end: time

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet hours must not start and end at the same time")
        return self


class WecomReceiver(NotifyModel):
    channel: Literal[ChannelType.wecom]
    #: The robot's webhook URL (…/cgi-bin/webhook/send?key=…): its key is the secret.
    url_env: EnvName
    msgtype: Literal["text", "markdown"] = "markdown"


class DingtalkReceiver(NotifyModel):
    channel: Literal[ChannelType.dingtalk]
    #: The robot's webhook URL (…/robot/send?access_token=…).
    url_env: EnvName
    #: The "加签" secret (SEC…): every request is signed with it.
    secret_env: EnvName
    msgtype: Literal["text", "markdown"] = "markdown"


class SuccessCheck(NotifyModel):
    """How an SMS gateway says "accepted": an HTTP status, and optionally a JSON field's value."""

    status: list[int] = [200]
    json_field: str | None = None
    equals: str | int | None = None

    @model_validator(mode="after")
    def _field_and_value_together(self) -> SuccessCheck:
        if (self.json_field is None) != (self.equals is None):
            raise ValueError("json_field and equals go together")
        return self


_PLACEHOLDER = re.compile(r"\{([a-z0-9_.\-]+)\}")


class SmsReceiver(NotifyModel):
    """A provider's HTTP API as a template: ``body`` is JSON whose strings may hold
    ``{text}``, ``{phone}`` and the names of ``credentials`` (filled from the environment)."""

    channel: Literal[ChannelType.sms]
    url: AnyHttpUrl
    method: Literal["POST", "PUT"] = "POST"
    #: Placeholder name -> environment variable holding its value.
    credentials: dict[Key, EnvName] = {}
    headers: dict[str, str] = {}
    body: dict[str, Any]
    #: Numbers of the duty officers (not complainants): one request each.
    phones: list[Annotated[str, StringConstraints(pattern=r"^\+?[0-9]{5,20}$")]] = Field(min_length=1)
    success: SuccessCheck = SuccessCheck()

    @field_validator("headers", "body")
    @classmethod
    def _placeholders_known(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        known = {"text", "phone", *info.data.get("credentials", {})}
        unknown = sorted(set(_PLACEHOLDER.findall(repr(value))) - known)
        if unknown:
            raise ValueError(f"unknown placeholders {unknown}: use text, phone or a credentials name")
        return value


class EmailReceiver(NotifyModel):
    channel: Literal[ChannelType.email]
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    username: str | None = None
    password_env: EnvName | None = None
    #: A private CA's certificate (PEM) the server's is checked against; default: the system's.
    ca_file: str | None = None
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1)

    @model_validator(mode="after")
    def _password_with_username(self) -> EmailReceiver:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("username and password_env go together")
        return self


class WebhookReceiver(NotifyModel):
    channel: Literal[ChannelType.webhook]
    url: AnyHttpUrl
    #: Key of the HMAC-SHA256 signature header (X-WO-Signature).
    secret_env: EnvName


ChannelConfig = Annotated[
    WecomReceiver | DingtalkReceiver | SmsReceiver | EmailReceiver | WebhookReceiver,
    Field(discriminator="channel"),
]


class Receiver(NotifyModel):
    id: Key
    #: What the channel is and how to reach it.
    via: ChannelConfig
    quiet_hours: QuietHours | None = None


class NotifyMatch(NotifyModel):
    """Every listed field must hold; an empty list or a missing field matches anything."""

    unit: list[Key] = []
    level: list[NotificationLevel] = []
    priority: list[Priority] = []
    kind: list[SignalKind] = []


class NotifyRoute(NotifyModel):
    match: NotifyMatch = NotifyMatch()
    receivers: list[Key] = []
    #: After this route matches, keep trying its later siblings (as Alertmanager's continue).
    continue_: bool = Field(default=False, alias="continue")
    routes: list[NotifyRoute] = []

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Urgent(NotifyModel):
    """What is sent during quiet hours all the same."""

    levels: list[NotificationLevel] = [NotificationLevel.leadership, NotificationLevel.new_urgent_order]
    priorities: list[Priority] = [Priority.P1]


class Backoff(NotifyModel):
    first_seconds: float = Field(default=30.0, gt=0)
    max_seconds: float = Field(default=1800.0, gt=0)


class NotificationPolicy(NotifyModel):
    #: The console's address of an order: ``{order_id}`` is replaced.
    console_url: Annotated[str, StringConstraints(pattern=r"^https?://\S*\{order_id\}\S*$")]
    receivers: list[Receiver] = []
    route: NotifyRoute = NotifyRoute()
    urgent: Urgent = Urgent()
    #: Attempts per notification before it is marked failed and the command center told.
    attempts: int = Field(default=5, ge=1, le=50)
    backoff: Backoff = Backoff()
    #: Told when a notification fails for good (a receiver id).
    command_center_receiver: Key | None = None
    #: Sent again while the order stays unresolved; None: once.
    repeat_every_minutes: int | None = Field(default=None, ge=5)
    #: At most this many repeats of one notification.
    repeat_at_most: int = Field(default=3, ge=0, le=100)
    #: Whether the text may carry the vehicle's plate.
    show_plate: bool = False

    @model_validator(mode="after")
    def _receivers_known_and_unique(self) -> NotificationPolicy:
        ids = [receiver.id for receiver in self.receivers]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"receiver ids must be unique; repeated: {', '.join(duplicated)}")
        return self

    def receiver(self, receiver_id: str) -> Receiver:
        return next(r for r in self.receivers if r.id == receiver_id)
