"""Policy as data: the units, the routing tree and the deadlines, as the YAML files say.

These models only check shape and cross-references; what the policy *does* lives in
``processors`` (``route_signal``, ``due_at``).
"""

from __future__ import annotations

import re
from datetime import date, time
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from workorder_pipeline.schemas.figures import FiguresPolicy
from workorder_pipeline.schemas.inbound import EnterpriseId
from workorder_pipeline.schemas.plates import Plate
from workorder_pipeline.schemas.signal import FieldValue, SignalKind
from workorder_pipeline.schemas.workflow import (
    DEFAULT_CARDS,
    AcceptanceLimits,
    CardRule,
    early_card,
    one_rule_per_level,
)
from workorder_pipeline.schemas.workflow import (
    LifecyclePolicy as LifecyclePolicy,  # re-exported: it lived here first
)
from workorder_pipeline.schemas.workflow import TimeLimit as TimeLimit  # re-exported: it lived here first
from workorder_pipeline.schemas.workorder import COMMAND_CENTER, Priority

Key = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.\-]*$", max_length=64)]


class PolicyModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- units


class Unit(PolicyModel):
    id: Key
    name: str
    domains: list[str] = []
    #: Administrative region codes of the unit's jurisdiction.
    regions: list[Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]] = []
    #: Waterway segments the unit patrols.
    waterway_segments: list[str] = []
    officers: int = Field(default=0, ge=0)


class Units(PolicyModel):
    units: list[Unit]

    @model_validator(mode="after")
    def _ids_unique_and_command_center_present(self) -> Units:
        ids = [unit.id for unit in self.units]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"unit ids must be unique; repeated: {', '.join(duplicated)}")
        if COMMAND_CENTER not in ids:
            raise ValueError(f"the default receiver {COMMAND_CENTER!r} must be listed as a unit")
        return self

    def ids(self) -> set[str]:
        return {unit.id for unit in self.units}

    def names(self) -> dict[str, str]:
        """Unit id -> its name up to its note ("执法一中队", not "执法一中队 (…)"): how the
        console, the notifications and the monthly report show a unit (one lookup for all)."""
        return {unit.id: unit.name.split(" (")[0] for unit in self.units}


# ---------------------------------------------------------------- routes


class Matcher(PolicyModel):
    """One field's test. A bare value in YAML means ``equals``; several operators all hold."""

    equals: FieldValue = None
    not_equals: FieldValue = None
    in_: list[FieldValue] | None = Field(default=None, alias="in")
    not_in: list[FieldValue] | None = None
    regex: str | None = None
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _bare_value_means_equals(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return {"equals": value}
        if not value:
            raise ValueError("a matcher needs at least one operator")
        return value

    @field_validator("regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value


class Route(PolicyModel):
    key: Key
    match: dict[str, Matcher] = {}
    unit: Key | None = None
    priority: Priority | None = None
    #: Units whose jurisdiction (regions in units.yaml) is checked against the signal's
    #: region, in order; the first that holds it takes the order, else ``unit`` does.
    jurisdiction: list[Key] = []
    #: After this route matches, keep trying its later siblings: each further match's unit
    #: gets a copy of the order (抄送); the first match stays responsible for it.
    continue_: bool = Field(default=False, alias="continue")
    routes: list[Route] = []

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def walk(self) -> list[Route]:
        """This route and every route below it, depth first."""
        return [self, *(node for child in self.routes for node in child.walk())]


class ConflictOfInterest(PolicyModel):
    """Complaints about an enforcement unit go to ``receiver``, never to the unit itself."""

    receiver: Key = "legal"
    #: Where a complaint about ``receiver`` itself goes.
    fallback: Key = COMMAND_CENTER


class RoutingTree(PolicyModel):
    route: Route
    conflict_of_interest: ConflictOfInterest = ConflictOfInterest()

    @model_validator(mode="after")
    def _root_is_complete_and_keys_unique(self) -> RoutingTree:
        if self.route.match:
            raise ValueError("the root route matches everything: it takes no 'match'")
        if self.route.unit is None or self.route.priority is None:
            raise ValueError("the root route must name the default 'unit' and 'priority'")
        keys = [node.key for node in self.route.walk()]
        duplicated = sorted({k for k in keys if keys.count(k) > 1})
        if duplicated:
            raise ValueError(f"route keys must be unique; repeated: {', '.join(duplicated)}")
        return self


# ---------------------------------------------------------------- deadlines


class Deadlines(PolicyModel):
    """How long a unit has to close an order, by priority, optionally per kind; and when to
    remind and escalate."""

    default: dict[Priority, TimeLimit]
    by_kind: dict[SignalKind, dict[Priority, TimeLimit]] = {}
    #: Orders created at or after this time of day (China time) count from the next day.
    cutoff: time = time(17, 0)
    #: Remind the unit when this fraction of the allowed time has passed.
    reminder_at: float = Field(default=0.75, gt=0, lt=1)
    #: Overdue by more than this: level 2 escalation to leadership (挂牌督办).
    escalation_grace_hours: float = Field(default=24, gt=0, le=24 * 366)
    #: 签收时限; none: orders have no acceptance deadline.
    acceptance: AcceptanceLimits | None = None
    #: The command center's own time to re-route an order a unit returned (退单).
    reroute: TimeLimit | None = None
    #: Yellow and red cards relative to due_at; each level at most once.
    cards: tuple[CardRule, ...] = DEFAULT_CARDS
    #: The cards of a priority, instead of ``cards`` (urgent orders count hours).
    cards_by_priority: dict[Priority, tuple[CardRule, ...]] = {}

    @field_validator("cards")
    @classmethod
    def _one_rule_per_card(cls, cards: tuple[CardRule, ...]) -> tuple[CardRule, ...]:
        return one_rule_per_level(cards)

    @field_validator("cards_by_priority")
    @classmethod
    def _one_rule_per_card_of_a_priority(
        cls, cards: dict[Priority, tuple[CardRule, ...]]
    ) -> dict[Priority, tuple[CardRule, ...]]:
        return {priority: one_rule_per_level(rules) for priority, rules in cards.items()}

    @model_validator(mode="after")
    def _no_card_at_opening(self) -> Deadlines:
        """A warning that fires when the order is opened warns of nothing: refused at start."""
        limits: list[tuple[str, Priority, TimeLimit]] = [("", p, limit) for p, limit in self.default.items()]
        limits += [(f"{k.value} ", p, limit) for k, by in self.by_kind.items() for p, limit in by.items()]
        for of, priority, limit in limits:
            for rule in self.cards_for(priority):
                why = early_card(rule, limit)
                if why is None:
                    continue
                own = priority in self.cards_by_priority
                where = f"cards_by_priority.{priority.value}" if own else "cards"
                raise ValueError(
                    f"{where}: the {rule.level.value} card {why}: it would fire when a {of}"
                    f"{priority.value} order is opened; give {priority.value} its cards in "
                    "cards_by_priority (hours_before for a limit in hours)"
                )
        return self

    def cards_for(self, priority: Priority) -> tuple[CardRule, ...]:
        return self.cards_by_priority.get(priority, self.cards)

    def all_cards(self) -> list[CardRule]:
        """Every card rule of every priority."""
        return [*self.cards, *(rule for rules in self.cards_by_priority.values() for rule in rules)]

    @model_validator(mode="after")
    def _every_priority_has_a_default(self) -> Deadlines:
        missing = [p.value for p in Priority if p not in self.default]
        if missing:
            raise ValueError(f"'default' needs a time limit for every priority; missing {missing}")
        return self

    def limit(self, kind: SignalKind, priority: Priority) -> TimeLimit:
        return self.by_kind.get(kind, {}).get(priority) or self.default[priority]


# ---------------------------------------------------------------- lifecycle


# ---------------------------------------------------------------- triage


class DedupeRule(PolicyModel):
    """Signals of one kind with equal ``key`` fields merge into one open order within ``window_hours``."""

    key: list[str] = Field(min_length=1)
    window_hours: float = Field(gt=0, le=24 * 366)


class SuppressRule(PolicyModel):
    """A threshold: a signal matching every matcher makes no order; recorded with ``reason``."""

    key: Key
    match: dict[str, Matcher] = Field(min_length=1)
    reason: str


class MuteWindow(PolicyModel):
    """A platform's signals in [starts_at, ends_at) make no order (maintenance, test data)."""

    key: Key
    platform_id: str
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    reason: str

    @model_validator(mode="after")
    def _ends_after_it_starts(self) -> MuteWindow:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class PriorityRule(PolicyModel):
    """A signal matching every matcher gets at least ``priority`` (rules never lower one)."""

    key: Key
    match: dict[str, Matcher] = Field(min_length=1)
    priority: Priority


class MinorViolationRule(PolicyModel):
    """轻微违法免罚: the first matching violation by a plate (or enterprise) within ``lookback_days``
    is answered with education and a warning, or with no order at all."""

    key: Key
    match: dict[str, Matcher] = Field(min_length=1)
    lookback_days: int = Field(default=365, ge=1, le=3660)
    action: Literal["warn", "suppress"] = "warn"


class Correlation(PolicyModel):
    """Links from a new order to the open orders on its plate or enterprise."""

    #: At most this many links per new order: the most recently created open orders, those
    #: on the same plate first, then those of the same enterprise. 0 links none; either way
    #: the audit trail counts the open orders left unlinked.
    max_related: int = Field(default=10, ge=0)


class Triage(PolicyModel):
    dedupe: dict[SignalKind, DedupeRule] = {}
    mute_windows: list[MuteWindow] = []
    suppress: list[SuppressRule] = []
    minor_violations: list[MinorViolationRule] = []
    priority_rules: list[PriorityRule] = []
    #: Enterprises on the key-supervision list get one priority level more.
    raise_key_supervision: bool = True
    correlation: Correlation = Correlation()

    @model_validator(mode="after")
    def _rule_keys_unique(self) -> Triage:
        keys = [
            *(r.key for r in self.mute_windows),
            *(r.key for r in self.suppress),
            *(r.key for r in self.minor_violations),
            *(r.key for r in self.priority_rules),
        ]
        duplicated = sorted({k for k in keys if keys.count(k) > 1})
        if duplicated:
            raise ValueError(f"rule keys must be unique; repeated: {', '.join(duplicated)}")
        return self


# ---------------------------------------------------------------- reference data


class WhitelistEntry(PolicyModel):
    """A plate or an enterprise not to chase, with who vouched for it, why, and until when."""

    plate: Plate | None = None
    enterprise_id: EnterpriseId | None = None
    owner: str
    reason: str
    expires_at: AwareDatetime
    #: suppress: no order; review: an order to the command center to re-check (白名单复核).
    action: Literal["suppress", "review"] = "suppress"

    @model_validator(mode="after")
    def _names_exactly_one_subject(self) -> WhitelistEntry:
        if (self.plate is None) == (self.enterprise_id is None):
            raise ValueError("a whitelist entry names either a plate or an enterprise_id")
        return self


class KeySupervisionEntry(PolicyModel):
    enterprise_id: EnterpriseId
    reason: Literal["credit", "complaints", "accidents", "violations"]
    since: date | None = None


class ReferenceData(PolicyModel):
    """Lists the command center edits often; reloaded by a running worker when the files change."""

    whitelist: list[WhitelistEntry] = []
    key_supervision: list[KeySupervisionEntry] = []
    #: Checkpoint id -> region code, where the suspect list's own region is wrong or missing.
    checkpoints: dict[str, Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]] = {}


# ---------------------------------------------------------------- everything


class Policy(PolicyModel):
    """Everything the triage and routing processors need, loaded and cross-checked."""

    units: Units
    routing: RoutingTree
    deadlines: Deadlines
    triage: Triage = Triage()
    lifecycle: LifecyclePolicy = LifecyclePolicy()
    #: The figures' score weights (policy/figures.yaml).
    figures: FiguresPolicy = FiguresPolicy()

    @model_validator(mode="after")
    def _routes_name_known_units(self) -> Policy:
        known = self.units.ids()
        named = [(n.key, n.unit) for n in self.routing.route.walk() if n.unit]
        named += [(n.key, unit) for n in self.routing.route.walk() for unit in n.jurisdiction]
        conflict = self.routing.conflict_of_interest
        named += [("conflict_of_interest", conflict.receiver), ("conflict_of_interest", conflict.fallback)]
        unknown = sorted({f"{key} -> {unit}" for key, unit in named if unit not in known})
        if unknown:
            raise ValueError(f"routes name units that units.yaml does not list: {', '.join(unknown)}")
        return self
