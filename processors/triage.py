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
8. correlation     other open orders on the same plate or enterprise are linked.

Nothing is dropped silently: a suppressed signal is an outcome with its reason, which the
caller stores and counts. State (open orders, earlier violations) comes in through
``TriageState``; ``BatchTriageState`` keeps it in memory so a batch, or a replay, sees
its own earlier decisions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from processors.routing import RouteDecision, matches, route_signal
from schemas.policy import Matcher, MinorViolationRule, Policy, ReferenceData, WhitelistEntry
from schemas.signal import FieldValue, Signal, SignalKind
from schemas.workorder import COMMAND_CENTER, Priority

WHITELIST_REVIEW_KEY = "whitelist-review"
WARNING_DISPOSITION = "warning_minor_violation"


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


class TriageState(Protocol):
    def open_order(self, dedupe_key: str, since: datetime) -> OpenOrder | None:
        """An open order with this dedupe key last seen at or after ``since``."""
        ...

    def prior_violations(self, violation_key: str, since: datetime) -> int:
        """Signals recorded under this violation key at or after ``since``."""
        ...

    def related_orders(self, plate: str | None, enterprise_id: str | None) -> list[str]:
        """Ids of open orders on the same plate or enterprise."""
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
        entries = [
            entry
            for entry in (
                self._plates.get(signal.plate) if signal.plate else None,
                self._enterprises.get(signal.enterprise_id) if signal.enterprise_id else None,
            )
            if entry is not None
        ]
        return next((e for e in entries if e.expires_at > now), entries[0] if entries else None)

    def key_supervision_reason(self, enterprise_id: str | None) -> str | None:
        entry = self._key_supervision.get(enterprise_id) if enterprise_id else None
        return entry.reason if entry else None

    def checkpoint_regions(self) -> dict[str, str]:
        return self.data.checkpoints


def triage(
    signal: Signal, policy: Policy, reference: ReferenceIndex, state: TriageState, now: datetime
) -> TriageOutcome:
    steps: list[Step] = []
    fields = signal_fields(signal)
    route = route_signal(signal, policy.routing, policy.units)

    def suppressed(reason: SuppressionReason, rule_key: str, detail: str) -> TriageOutcome:
        steps.append(Step(reason.value, "suppressed", detail))
        return TriageOutcome(
            signal, Action.suppress, route, route.priority, tuple(steps),
            suppression=Suppression(reason, rule_key, detail),
        )  # fmt: skip

    # 1. mute windows
    platform = signal.attributes.get("platform_id")
    for window in policy.triage.mute_windows:
        if platform == window.platform_id and window.starts_at <= signal.occurred_at < window.ends_at:
            return suppressed(
                SuppressionReason.mute_window, window.key, f"platform {platform} muted: {window.reason}"
            )
    steps.append(Step("mute_window", "pass", "no mute window covers this platform and time"))

    # 2. whitelist: never for complaints, which always get an answer (件件有回音)
    entry = reference.whitelisted(signal, now) if signal.kind is not SignalKind.complaint else None
    if entry is not None and entry.expires_at <= now:
        steps.append(Step("whitelist", "pass", f"whitelist entry expired {entry.expires_at.isoformat()}"))
    elif entry is not None and entry.action == "suppress":
        return suppressed(SuppressionReason.whitelist, "whitelist", _whitelist_detail(entry))
    elif entry is not None:
        route = RouteDecision(
            COMMAND_CENTER, route.priority, WHITELIST_REVIEW_KEY, (*route.path, WHITELIST_REVIEW_KEY),
            reason=f"whitelisted, to be re-checked by the command center: {_whitelist_detail(entry)}",
        )  # fmt: skip
        steps.append(Step("whitelist", "review", _whitelist_detail(entry)))
    elif signal.kind is SignalKind.complaint:
        steps.append(Step("whitelist", "pass", "complaints are answered whatever the whitelist says"))
    else:
        steps.append(Step("whitelist", "pass", "plate and enterprise not whitelisted"))

    # 3. thresholds
    for rule in policy.triage.suppress:
        if matches_all(rule.match, fields):
            return suppressed(SuppressionReason.threshold, rule.key, rule.reason)
    steps.append(Step("threshold", "pass", "no suppression threshold matched"))

    # 4. route
    steps.append(Step("route", route.unit, f"{' > '.join(route.path)}: {route.reason}"))

    # 5. priority
    priority = route.priority
    for priority_rule in policy.triage.priority_rules:
        if matches_all(priority_rule.match, fields) and _rank(priority_rule.priority) < _rank(priority):
            priority = priority_rule.priority
            steps.append(Step("priority", priority.value, f"rule {priority_rule.key}"))
    supervised = reference.key_supervision_reason(signal.enterprise_id)
    if supervised and policy.triage.raise_key_supervision and priority != Priority.P1:
        priority = _raised(priority)
        steps.append(Step("priority", priority.value, f"enterprise under key supervision ({supervised})"))
    steps.append(Step("priority", priority.value, "final priority"))

    # 6. dedupe
    key = dedupe_key(signal, policy)
    if key is not None:
        hours = policy.triage.dedupe[signal.kind].window_hours
        open_order = state.open_order(key, signal.occurred_at - timedelta(hours=hours))
        if open_order is not None:
            steps.append(
                Step("dedupe", "merge", f"open order {open_order.id} has key {key}, seen within {hours:g} h")
            )
            return TriageOutcome(
                signal, Action.merge, route, priority, tuple(steps), dedupe_key=key, merge_into=open_order
            )
        steps.append(Step("dedupe", "new", f"no open order with key {key} seen within {hours:g} h"))
    else:
        steps.append(Step("dedupe", "new", "no dedupe rule for this kind, or a key field is missing"))

    # 7. minor violation
    disposition, violation = None, None
    for minor in policy.triage.minor_violations:
        violation = violation_key(minor, signal, fields)
        if violation is None:
            continue
        earlier = state.prior_violations(violation, now - timedelta(days=minor.lookback_days))
        if earlier:
            steps.append(
                Step("minor_violation", "repeat", f"{earlier} earlier within {minor.lookback_days} days")
            )
            break
        if minor.action == "suppress":
            outcome = suppressed(
                SuppressionReason.minor_violation, minor.key, "first minor violation: no order"
            )
            return _with_violation(outcome, violation)
        disposition = WARNING_DISPOSITION
        steps.append(
            Step("minor_violation", "warn", f"first minor violation ({minor.key}): warning suggested")
        )
        break

    # 8. correlation
    related = tuple(state.related_orders(signal.plate, signal.enterprise_id))
    if related:
        steps.append(Step("correlation", "linked", f"open orders on the same subject: {', '.join(related)}"))
    return TriageOutcome(
        signal, Action.create, route, priority, tuple(steps), dedupe_key=key,
        suggested_disposition=disposition, violation_key=violation, related=related,
    )  # fmt: skip


def signal_fields(signal: Signal) -> dict[str, FieldValue]:
    """What triage rules can match: the route fields plus the subject's identity."""
    return {
        **signal.route_fields(),
        "plate": signal.plate,
        "enterprise_id": signal.enterprise_id,
    }


def dedupe_key(signal: Signal, policy: Policy) -> str | None:
    rule = policy.triage.dedupe.get(signal.kind)
    if rule is None:
        return None
    fields = signal_fields(signal)
    values = [fields.get(name) for name in rule.key]
    if any(value is None or value == "" for value in values):
        return None
    return "|".join([signal.kind.value, *(str(value) for value in values)])


def violation_key(rule: MinorViolationRule, signal: Signal, fields: dict[str, FieldValue]) -> str | None:
    """What a first-violation check counts under: the rule and the offending plate or enterprise."""
    subject = signal.plate or signal.enterprise_id
    if subject is None or not matches_all(rule.match, fields):
        return None
    return f"{rule.key}:{subject}"


def state_keys(signal: Signal, policy: Policy) -> tuple[str | None, list[str], list[str]]:
    """What triage of ``signal`` may look up: its dedupe key, candidate violation keys, subjects."""
    fields = signal_fields(signal)
    violations = [v for rule in policy.triage.minor_violations if (v := violation_key(rule, signal, fields))]
    return dedupe_key(signal, policy), violations, list(_subjects(signal))


def matches_all(matchers: dict[str, Matcher], fields: dict[str, FieldValue]) -> bool:
    return all(matches(matcher, fields.get(name)) for name, matcher in matchers.items())


def _rank(priority: Priority) -> int:
    return int(priority.value[1])


def _raised(priority: Priority) -> Priority:
    return Priority(f"P{max(1, _rank(priority) - 1)}")


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
    #: plate or enterprise id -> open order ids
    subjects: dict[str, list[str]] = field(default_factory=dict)

    def open_order(self, dedupe_key: str, since: datetime) -> OpenOrder | None:
        found = self.open_orders.get(dedupe_key)
        return found[0] if found and found[1] >= since else None

    def prior_violations(self, violation_key: str, since: datetime) -> int:
        return sum(1 for at in self.violations.get(violation_key, []) if at >= since)

    def related_orders(self, plate: str | None, enterprise_id: str | None) -> list[str]:
        ids: list[str] = []
        for subject in (plate, enterprise_id):
            for order_id in self.subjects.get(subject, []) if subject else []:
                if order_id not in ids:
                    ids.append(order_id)
        return ids

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
