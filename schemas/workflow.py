"""Policy of the 12345-grade workflow, as data: time limits, the acceptance clock (签收时限),
extension limits (延期), return reasons (退单), reworks before leadership (提级督办) and the
yellow and red cards (黄牌/红牌). What the policy *does* lives in ``processors``."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workorder_pipeline.schemas.commands import ReturnReason
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import Priority


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeLimit(_Model):
    """Hours of the clock for urgent matters, or working days on China's official calendar."""

    hours: float | None = Field(default=None, gt=0, le=24 * 366)
    working_days: int | None = Field(default=None, ge=1, le=366)

    @model_validator(mode="after")
    def _exactly_one_unit(self) -> TimeLimit:
        if (self.hours is None) == (self.working_days is None):
            raise ValueError("give either 'hours' or 'working_days'")
        return self

    def __str__(self) -> str:
        return f"{self.hours:g} h" if self.hours is not None else f"{self.working_days} working days"


class AcceptanceLimits(_Model):
    """签收时限: how long a unit has to accept an order dispatched to it, by priority,
    optionally per kind; it starts again when the order is reassigned."""

    default: dict[Priority, TimeLimit]
    by_kind: dict[SignalKind, dict[Priority, TimeLimit]] = {}
    #: Remind the unit this many hours of the clock before the acceptance deadline.
    remind_before_hours: float = Field(default=1, ge=0, le=24 * 366)

    @model_validator(mode="after")
    def _every_priority_has_a_default(self) -> AcceptanceLimits:
        missing = [p.value for p in Priority if p not in self.default]
        if missing:
            raise ValueError(f"'default' needs an acceptance limit for every priority; missing {missing}")
        return self

    def limit(self, kind: SignalKind, priority: Priority) -> TimeLimit:
        return self.by_kind.get(kind, {}).get(priority) or self.default[priority]


class CardLevel(StrEnum):
    yellow = "yellow"  # 黄牌: the deadline is near
    red = "red"  # 红牌: the deadline has passed


class CardRule(_Model):
    """When a card fires, relative to the order's due_at: ``working_days_before`` N fires at
    the same clock time N working days earlier (a due_at at 00:00 is the end of the day
    before); ``working_days_after`` N fires at the start (00:00 China time) of the N-th
    working day after the due day; hours are hours of the clock."""

    level: CardLevel
    working_days_before: int | None = Field(default=None, ge=1, le=366)
    hours_before: float | None = Field(default=None, gt=0, le=24 * 366)
    working_days_after: int | None = Field(default=None, ge=1, le=366)
    hours_after: float | None = Field(default=None, ge=0, le=24 * 366)

    @model_validator(mode="after")
    def _exactly_one_offset(self) -> CardRule:
        given = [
            v
            for v in (self.working_days_before, self.hours_before, self.working_days_after, self.hours_after)
            if v is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of working_days_before, hours_before, working_days_after, hours_after"
            )
        return self


#: Shandong's practice: yellow one working day before the deadline, red on the first working
#: day after it.
DEFAULT_CARDS = (
    CardRule(level=CardLevel.yellow, working_days_before=1),
    CardRule(level=CardLevel.red, working_days_after=1),
)


def one_rule_per_level(cards: tuple[CardRule, ...]) -> tuple[CardRule, ...]:
    levels = [rule.level.value for rule in cards]
    repeated = sorted({level for level in levels if levels.count(level) > 1})
    if repeated:
        raise ValueError(f"one rule per card level; repeated: {', '.join(repeated)}")
    return cards


def early_card(rule: CardRule, limit: TimeLimit) -> str | None:
    """Why ``rule`` would fire as soon as an order with ``limit`` is opened (or could, on a
    weekend); None when it leaves the unit time first. A deadline in working days ends a
    working day at least ``working_days`` * 24 h after the order is opened."""
    if rule.working_days_before is not None:
        if limit.working_days is None:
            return "counts working days back from a deadline in hours (a weekend can put it before the order)"
        if rule.working_days_before >= limit.working_days:
            return f"is {rule.working_days_before} working days before a deadline of {limit}"
    if rule.hours_before is not None:
        allowed = limit.hours if limit.hours is not None else 24 * (limit.working_days or 0)
        if rule.hours_before >= allowed:
            return f"is {rule.hours_before:g} h before a deadline of {limit}"
    return None


class ExtensionLimits(_Model):
    """延期申请: how often, and by how much in all, a unit may ask for more time on one order."""

    max_requests: int = Field(default=1, ge=0, le=20)
    #: Total granted in working days (requests in working days).
    max_working_days: int = Field(default=7, ge=0, le=366)
    #: Total granted in hours (requests in hours, for orders with a limit in hours).
    max_hours: float = Field(default=72, ge=0, le=24 * 366)


class LifecyclePolicy(_Model):
    """What closing an order requires."""

    #: Every field action needs at least two sworn officers (每次执法不得少于2名在编执法人员).
    min_officers: int = Field(default=2, ge=1, le=20)
    #: A complaint may be closed as "unreachable" after this many call attempts.
    unreachable_after_attempts: int = Field(default=3, ge=1, le=100)
    #: 延期申请 limits per order.
    extensions: ExtensionLimits = ExtensionLimits()
    #: Reason codes a unit may give for a return (退单); the vocabulary is ReturnReason.
    return_reasons: frozenset[ReturnReason] = frozenset(ReturnReason)
    #: An order sent back for rework this many times is raised to leadership (提级督办).
    reworks_to_leadership: int = Field(default=3, ge=1, le=100)

    @field_validator("return_reasons")
    @classmethod
    def _some_reason_allowed(cls, reasons: frozenset[ReturnReason]) -> frozenset[ReturnReason]:
        if not reasons:
            raise ValueError("list at least one return reason, or units could never return an order")
        return reasons
