"""``triage``: decide what one signal becomes: a new order, a merge into an open one, or nothing.

Steps, in order, each recorded with its reason (``wo rules explain`` prints them):

1. mute windows    a platform's signals during maintenance or tests make no order;
2. whitelist       a vouched-for plate or enterprise makes no order, or a review order
                   (never for complaints: every ticket gets an answer);
3. thresholds      signals under the policy's thresholds make no order;
4. route           the routing tree picks unit and priority (processors.routing);
5. priority        priority rules raise it; key-supervision enterprises one level more;
6. dedupe          an open order with the same key within the window absorbs the signal;
7. minor violation a first minor violation gets a warning (or no order), not a case;
8. correlation     other open orders on the same plate or enterprise are linked: at most
                   ``correlation.max_related``, the newest (plate first), the rest counted.

Nothing is dropped silently: a suppressed signal is an outcome with its reason, which the
caller stores and counts. State (open orders, earlier violations) comes in through
``TriageState``; ``BatchTriageState`` keeps it in memory so a batch, or a replay, sees
its own earlier decisions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from processors.derived import once_per_object
from processors.routing import CompiledMatch, RouteDecision, compiled, matches_all, passes, route_signal
from schemas.policy import (
    DedupeRule,
    Matcher,
    MinorViolationRule,
    Policy,
    PriorityRule,
    ReferenceData,
    SuppressRule,
    Triage,
    WhitelistEntry,
)
from schemas.signal import FieldValue, Signal, SignalKind
from schemas.workorder import COMMAND_CENTER, Priority

WHITELIST_REVIEW_KEY = "whitelist-review"
WARNING_DISPOSITION = "warning_minor_violation"
_NONE: tuple[str, ...] = ()


class Action(StrEnum):
    create = "create"
    merge = "merge"
    suppress = "suppress"


class SuppressionReason(StrEnum):
    """Why a signal made no order. A closed set: it is a metric label."""

    mute_window = "mute_window"
    whitelist = "whitelist"
    threshold = "threshold"
    minor_violation = "minor_violation"
    #: Older than WO_MAX_EVENT_AGE_DAYS at receipt (decided before triage: processors/admission.py).
    stale = "stale"


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    outcome: str
    reason: str


@dataclass(frozen=True, slots=True)
class OpenOrder:
    id: str
    unit: str


@dataclass(frozen=True, slots=True)
class Suppression:
    reason: SuppressionReason
    rule_key: str
    detail: str


@dataclass(frozen=True, slots=True)
class TriageOutcome:
    signal: Signal
    action: Action
    route: RouteDecision
    priority: Priority
    steps: tuple[Step, ...]
    dedupe_key: str | None = None
    merge_into: OpenOrder | None = None
    suppression: Suppression | None = None
    suggested_disposition: str | None = None
    #: Set when a minor-violation rule matched: what later "first violation?" checks count.
    violation_key: str | None = None
    related: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RelatedOrders:
    """Open orders on a signal's plate or enterprise: those to link, and how many more there are."""

    ids: tuple[str, ...] = ()
    #: Open orders on the same subject not in ``ids`` (beyond ``max_related``).
    unlinked: int = 0


class TriageState(Protocol):
    def open_order(self, dedupe_key: str, since: datetime) -> OpenOrder | None:
        """An open order with this dedupe key last seen at or after ``since``."""
        ...

    def prior_violations(self, violation_key: str, since: datetime) -> int:
        """Signals recorded under this violation key at or after ``since``."""
        ...

    def related_orders(self, plate: str | None, enterprise_id: str | None, limit: int) -> RelatedOrders:
        """Ids of at most ``limit`` open orders on the same plate or enterprise: the most
        recently created, those on the plate first; and how many others there are."""
        ...


class ReferenceIndex:
    """Reference data indexed for lookups on the hot path."""

    def __init__(self, reference: ReferenceData) -> None:
        self.data = reference
        self._plates = {e.plate: e for e in reference.whitelist if e.plate}
        self._enterprises = {e.enterprise_id: e for e in reference.whitelist if e.enterprise_id}
        self._key_supervision = {e.enterprise_id: e for e in reference.key_supervision}

    def whitelisted(self, signal: Signal, now: datetime) -> WhitelistEntry | None:
        """The signal's live whitelist entry (plate first, then enterprise); failing that, an
        expired one, so the explanation can say it expired."""
        by_plate = self._plates.get(signal.plate) if signal.plate else None
        by_enterprise = self._enterprises.get(signal.enterprise_id) if signal.enterprise_id else None
        if by_plate is None or by_enterprise is None:
            return by_plate if by_plate is not None else by_enterprise
        return by_enterprise if by_plate.expires_at <= now < by_enterprise.expires_at else by_plate

    def key_supervision_reason(self, enterprise_id: str | None) -> str | None:
        entry = self._key_supervision.get(enterprise_id) if enterprise_id else None
        return entry.reason if entry else None

    def checkpoint_regions(self) -> dict[str, str]:
        return self.data.checkpoints


def triage(
    signal: Signal, policy: Policy, reference: ReferenceIndex, state: TriageState, now: datetime
) -> TriageOutcome:
    steps: list[Step] = []
    route_fields = signal.route_fields()
    route = route_signal(signal, policy.routing, policy.units, route_fields)
    fields = _with_subject(route_fields, signal)
    plan = _plan(policy.triage)
    rules = plan.rules(fields.get("kind"))

    # 1. mute windows
    platform = signal.attributes.get("platform_id")
    for window in policy.triage.mute_windows:
        if platform == window.platform_id and window.starts_at <= signal.occurred_at < window.ends_at:
            return _suppressed(
                signal, route, steps, SuppressionReason.mute_window, window.key,
                f"platform {platform} muted: {window.reason}",
            )  # fmt: skip
    steps.append(_NO_MUTE_WINDOW)

    # 2. whitelist: never for complaints, which always get an answer (件件有回音)
    entry = reference.whitelisted(signal, now) if signal.kind is not SignalKind.complaint else None
    if entry is not None and entry.expires_at <= now:
        steps.append(Step("whitelist", "pass", f"whitelist entry expired {entry.expires_at.isoformat()}"))
    elif entry is not None and entry.action == "suppress":
        return _suppressed(
            signal, route, steps, SuppressionReason.whitelist, "whitelist", _whitelist_detail(entry)
        )
    elif entry is not None:
        route = RouteDecision(
            COMMAND_CENTER, route.priority, WHITELIST_REVIEW_KEY, (*route.path, WHITELIST_REVIEW_KEY),
            reason=f"whitelisted, to be re-checked by the command center: {_whitelist_detail(entry)}",
        )  # fmt: skip
        steps.append(Step("whitelist", "review", _whitelist_detail(entry)))
    elif signal.kind is SignalKind.complaint:
        steps.append(_COMPLAINTS_ANSWERED)
    else:
        steps.append(_NOT_WHITELISTED)

    # 3. thresholds
    for rule, tests in rules.suppress:
        if passes(tests, fields):
            return _suppressed(signal, route, steps, SuppressionReason.threshold, rule.key, rule.reason)
    steps.append(_NO_THRESHOLD)

    # 4. route
    steps.append(Step("route", route.unit, f"{' > '.join(route.path)}: {route.reason}"))

    # 5. priority
    priority = route.priority
    for priority_rule, tests in rules.priority:
        if _RANK[priority_rule.priority] < _RANK[priority] and passes(tests, fields):
            priority = priority_rule.priority
            steps.append(Step("priority", priority.value, f"rule {priority_rule.key}"))
    supervised = reference.key_supervision_reason(signal.enterprise_id)
    if supervised and policy.triage.raise_key_supervision and priority != Priority.P1:
        priority = _raised(priority)
        steps.append(Step("priority", priority.value, f"enterprise under key supervision ({supervised})"))
    steps.append(_FINAL_PRIORITY[priority])

    # 6. dedupe
    dedupe = plan.dedupe.get(signal.kind)
    key = _dedupe_key(signal, dedupe.rule, fields) if dedupe is not None else None
    if dedupe is not None and key is not None:
        open_order = state.open_order(key, signal.occurred_at - dedupe.window)
        if open_order is not None:
            steps.append(Step("dedupe", "merge", f"open order {open_order.id} has key {key}, {dedupe.seen}"))
            return TriageOutcome(
                signal, Action.merge, route, priority, tuple(steps), dedupe_key=key, merge_into=open_order
            )
        steps.append(Step("dedupe", "new", f"no open order with key {key} {dedupe.seen}"))
    else:
        steps.append(_NO_DEDUPE_KEY)

    # 7. minor violation
    disposition, violation = None, None
    subject = signal.plate or signal.enterprise_id
    for minor, tests, lookback in rules.minor_violations if subject is not None else ():
        if not passes(tests, fields):
            continue
        violation = f"{minor.key}:{subject}"
        earlier = state.prior_violations(violation, now - lookback)
        if earlier:
            steps.append(
                Step("minor_violation", "repeat", f"{earlier} earlier within {minor.lookback_days} days")
            )
            break
        if minor.action == "suppress":
            outcome = _suppressed(
                signal, route, steps, SuppressionReason.minor_violation, minor.key,
                "first minor violation: no order",
            )  # fmt: skip
            return _with_violation(outcome, violation)
        disposition = WARNING_DISPOSITION
        steps.append(
            Step("minor_violation", "warn", f"first minor violation ({minor.key}): warning suggested")
        )
        break

    # 8. correlation
    most = policy.triage.correlation.max_related
    related = state.related_orders(signal.plate, signal.enterprise_id, most)
    if related.ids:
        reason = f"open orders on the same subject: {', '.join(related.ids)}"
        if related.unlinked:
            n = related.unlinked
            reason += f" (and {n} more open {_orders(n)} on the same subject, not linked)"
        steps.append(Step("correlation", "linked", reason))
    elif related.unlinked:  # max_related is 0
        n = related.unlinked
        reason = f"{n} open {_orders(n)} on the same subject, not linked: max_related is {most}"
        steps.append(Step("correlation", "not_linked", reason))
    return TriageOutcome(
        signal, Action.create, route, priority, tuple(steps), dedupe_key=key,
        suggested_disposition=disposition, violation_key=violation, related=related.ids,
    )  # fmt: skip


def _suppressed(
    signal: Signal,
    route: RouteDecision,
    steps: list[Step],
    reason: SuppressionReason,
    rule_key: str,
    detail: str,
) -> TriageOutcome:
    steps.append(Step(reason.value, "suppressed", detail))
    return TriageOutcome(
        signal, Action.suppress, route, route.priority, tuple(steps),
        suppression=Suppression(reason, rule_key, detail),
    )  # fmt: skip


def signal_fields(signal: Signal) -> dict[str, FieldValue]:
    """What triage rules can match: the route fields plus the subject's identity."""
    return _with_subject(signal.route_fields(), signal)


def _with_subject(route_fields: dict[str, FieldValue], signal: Signal) -> dict[str, FieldValue]:
    return {**route_fields, "plate": signal.plate, "enterprise_id": signal.enterprise_id}


def dedupe_key(signal: Signal, policy: Policy, fields: Mapping[str, FieldValue] | None = None) -> str | None:
    """The key of the open order ``signal`` would merge into; ``fields``: its ``signal_fields``."""
    rule = policy.triage.dedupe.get(signal.kind)
    if rule is None:
        return None
    return _dedupe_key(signal, rule, signal_fields(signal) if fields is None else fields)


def _dedupe_key(signal: Signal, rule: DedupeRule, fields: Mapping[str, FieldValue]) -> str | None:
    values = [fields.get(name) for name in rule.key]
    if any(value is None or value == "" for value in values):
        return None
    return "|".join([signal.kind.value, *(str(value) for value in values)])


def violation_key(rule: MinorViolationRule, signal: Signal, fields: Mapping[str, FieldValue]) -> str | None:
    """What a first-violation check counts under: the rule and the offending plate or enterprise."""
    subject = signal.plate or signal.enterprise_id
    if subject is None or not matches_all(rule.match, fields):
        return None
    return f"{rule.key}:{subject}"


def state_keys(signal: Signal, policy: Policy) -> tuple[str | None, list[str], list[str]]:
    """What triage of ``signal`` may look up: its dedupe key, candidate violation keys, subjects."""
    fields = signal_fields(signal)
    subject = signal.plate or signal.enterprise_id
    violations = (
        [
            f"{rule.key}:{subject}"
            for rule, tests, _ in _plan(policy.triage).rules(fields.get("kind")).minor_violations
            if passes(tests, fields)
        ]
        if subject is not None
        else []
    )
    return dedupe_key(signal, policy, fields), violations, list(_subjects(signal))


_RANK = {priority: int(priority.value[1]) for priority in Priority}

_NO_MUTE_WINDOW = Step("mute_window", "pass", "no mute window covers this platform and time")
_COMPLAINTS_ANSWERED = Step("whitelist", "pass", "complaints are answered whatever the whitelist says")
_NOT_WHITELISTED = Step("whitelist", "pass", "plate and enterprise not whitelisted")
_NO_THRESHOLD = Step("threshold", "pass", "no suppression threshold matched")
_FINAL_PRIORITY = {priority: Step("priority", priority.value, "final priority") for priority in Priority}
_NO_DEDUPE_KEY = Step("dedupe", "new", "no dedupe rule for this kind, or a key field is missing")


def _raised(priority: Priority) -> Priority:
    return Priority(f"P{max(1, _RANK[priority] - 1)}")


def _orders(count: int) -> str:
    return "order" if count == 1 else "orders"


def _whitelist_detail(entry: WhitelistEntry) -> str:
    return f"{entry.reason} (vouched for by {entry.owner}, until {entry.expires_at.date().isoformat()})"


def _with_violation(outcome: TriageOutcome, violation: str) -> TriageOutcome:
    return TriageOutcome(
        outcome.signal, outcome.action, outcome.route, outcome.priority, outcome.steps,
        suppression=outcome.suppression, violation_key=violation,
    )  # fmt: skip


@dataclass
class BatchTriageState:
    """Triage state in memory: a snapshot loaded for a batch, updated by the batch's own outcomes."""

    #: dedupe key -> (open order, last seen at)
    open_orders: dict[str, tuple[OpenOrder, datetime]] = field(default_factory=dict)
    #: violation key -> times recorded
    violations: dict[str, list[datetime]] = field(default_factory=dict)
    #: plate or enterprise id -> open order ids, oldest first
    subjects: dict[str, list[str]] = field(default_factory=dict)
    #: subject -> (its list in ``subjects``, how much of it is in the set, the set of ids)
    _id_sets: dict[str, tuple[Sequence[str], int, set[str]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def open_order(self, dedupe_key: str, since: datetime) -> OpenOrder | None:
        found = self.open_orders.get(dedupe_key)
        return found[0] if found and found[1] >= since else None

    def prior_violations(self, violation_key: str, since: datetime) -> int:
        return sum(1 for at in self.violations.get(violation_key, []) if at >= since)

    def related_orders(self, plate: str | None, enterprise_id: str | None, limit: int) -> RelatedOrders:
        on_plate = self.subjects.get(plate, _NONE) if plate else _NONE
        on_enterprise = self.subjects.get(enterprise_id, _NONE) if enterprise_id else _NONE
        if len(on_plate) + len(on_enterprise) <= limit:
            return RelatedOrders(tuple(dict.fromkeys([*on_plate, *on_enterprise])))
        # More than ``limit`` may be open: the newest on the plate, then the enterprise's
        # newest, each group listed oldest first (as they are when all are linked).
        linked: list[str] = []
        seen: set[str] = set()
        for ids in (on_plate, on_enterprise):
            newest: list[str] = []
            for order_id in reversed(ids):
                if len(seen) == limit:
                    break
                if order_id not in seen:
                    seen.add(order_id)
                    newest.append(order_id)
            linked += reversed(newest)
        if len(linked) < limit:  # every open order on the subject is linked
            return RelatedOrders(tuple(linked))
        return RelatedOrders(tuple(linked), self._count_open(plate, enterprise_id) - len(linked))

    def _count_open(self, plate: str | None, enterprise_id: str | None) -> int:
        """Open orders on the plate or the enterprise, each counted once."""
        sets = sorted((self._ids_on(s) for s in (plate, enterprise_id) if s), key=len)
        if len(sets) < 2 or sets[0] is sets[1]:
            return len(sets[-1]) if sets else 0
        fewer, more = sets
        return len(more) + sum(1 for order_id in fewer if order_id not in more)

    def _ids_on(self, subject: str) -> set[str]:
        """``subjects[subject]`` as a set, kept up to date as the list grows (record appends)."""
        ids = self.subjects.get(subject, _NONE)
        known = self._id_sets.get(subject)
        if known is None or known[0] is not ids or known[1] > len(ids):
            known = (ids, 0, set())
        _, covered, distinct = known
        if covered < len(ids):
            distinct.update(ids[covered:])
            self._id_sets[subject] = (ids, len(ids), distinct)
        return distinct

    def record(self, outcome: TriageOutcome, order_id: str | None, now: datetime) -> None:
        """Remember what ``outcome`` did, so later signals of the batch see it."""
        signal = outcome.signal
        if outcome.violation_key:
            self.violations.setdefault(outcome.violation_key, []).append(now)
        if outcome.action is Action.merge and outcome.dedupe_key and outcome.merge_into:
            previous = (
                self.open_orders[outcome.dedupe_key][1] if outcome.dedupe_key in self.open_orders else None
            )
            last = max(signal.occurred_at, previous) if previous else signal.occurred_at
            self.open_orders[outcome.dedupe_key] = (outcome.merge_into, last)
        if outcome.action is Action.create and order_id is not None:
            if outcome.dedupe_key:
                self.open_orders[outcome.dedupe_key] = (
                    OpenOrder(order_id, outcome.route.unit),
                    signal.occurred_at,
                )
            for subject in _subjects(signal):
                self.subjects.setdefault(subject, []).append(order_id)


def _subjects(signal: Signal) -> Iterable[str]:
    return [s for s in (signal.plate, signal.enterprise_id) if s]


# ---------------------------------------------------------------- the policy, compiled


@dataclass(frozen=True, slots=True)
class _KindRules:
    """The triage rules that can match a signal whose ``kind`` field has one value, compiled,
    in policy order. Their ``kind`` matchers are applied already (and left out of the tests)."""

    suppress: tuple[tuple[SuppressRule, CompiledMatch], ...]
    priority: tuple[tuple[PriorityRule, CompiledMatch], ...]
    minor_violations: tuple[tuple[MinorViolationRule, CompiledMatch, timedelta], ...]


@dataclass(frozen=True, slots=True)
class _Dedupe:
    rule: DedupeRule
    window: timedelta
    #: How the audit trail words the window.
    seen: str


@dataclass(frozen=True, slots=True)
class _Plan:
    """A triage policy prepared once for every signal: its rules compiled, grouped by kind."""

    by_kind: Mapping[str, _KindRules]
    #: For a ``kind`` field that is no kind's value (an attribute named ``kind``): every rule.
    every_rule: _KindRules
    dedupe: Mapping[SignalKind, _Dedupe]

    def rules(self, kind: FieldValue) -> _KindRules:
        return self.by_kind.get(kind, self.every_rule) if type(kind) is str else self.every_rule


@once_per_object(limit=100)
def _plan(policy: Triage) -> _Plan:
    return _Plan(
        by_kind={kind.value: _kind_rules(policy, kind.value) for kind in SignalKind},
        every_rule=_kind_rules(policy, None),
        dedupe={
            kind: _Dedupe(rule, timedelta(hours=rule.window_hours), f"seen within {rule.window_hours:g} h")
            for kind, rule in policy.dedupe.items()
        },
    )


def _kind_rules(policy: Triage, kind: str | None) -> _KindRules:
    """The rules that can match a signal of ``kind`` (None: any), compiled."""

    def tests(match: dict[str, Matcher]) -> CompiledMatch | None:
        """``match``'s tests, less those of ``kind`` if it passes them; None if it fails them."""
        everything = compiled(match)
        if kind is None:
            return everything
        if not all(test(kind) for name, test in everything if name == "kind"):
            return None
        return tuple((name, test) for name, test in everything if name != "kind")

    return _KindRules(
        suppress=tuple((r, t) for r in policy.suppress if (t := tests(r.match)) is not None),
        priority=tuple((r, t) for r in policy.priority_rules if (t := tests(r.match)) is not None),
        minor_violations=tuple(
            (r, t, timedelta(days=r.lookback_days))
            for r in policy.minor_violations
            if (t := tests(r.match)) is not None
        ),
    )
