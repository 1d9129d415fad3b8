"""The triage steps, in the order ``triage`` runs them (the numbered list in ``processors.triage``).

Every step has one signature, as structlog's processors do: it takes the signal's
``Triaging`` (what the steps before it decided and recorded), adds its own ``Step`` to the
audit trail and returns None for the next step to go on, or the ``TriageOutcome`` that ends
the triage (a suppression or a merge). Each can be run alone on a ``Triaging`` built with
``Triaging.start``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from workorder_pipeline.processors.compiled_policy import CompiledPolicy, KindRules
from workorder_pipeline.processors.routing import RouteDecision, passes, route_signal
from workorder_pipeline.processors.triage.outcome import (
    WARNING_DISPOSITION,
    WHITELIST_REVIEW_KEY,
    Action,
    Step,
    Suppression,
    SuppressionReason,
    TriageOutcome,
    TriageState,
)
from workorder_pipeline.processors.triage.reference import ReferenceIndex
from workorder_pipeline.schemas.policy import WhitelistEntry
from workorder_pipeline.schemas.signal import FieldValue, Signal, SignalKind
from workorder_pipeline.schemas.workorder import COMMAND_CENTER, Priority


@dataclass(slots=True)
class Triaging:
    """One signal on its way through the steps: its inputs, and what the steps decided so far."""

    signal: Signal
    policy: CompiledPolicy
    reference: ReferenceIndex
    state: TriageState
    now: datetime
    #: What triage rules can match (``signal_fields``).
    fields: dict[str, FieldValue]
    #: The rules that can match the signal's kind.
    rules: KindRules
    route: RouteDecision
    priority: Priority
    steps: list[Step] = field(default_factory=list)
    dedupe_key: str | None = None
    disposition: str | None = None
    violation_key: str | None = None
    related: tuple[str, ...] = ()

    @classmethod
    def start(
        cls,
        signal: Signal,
        policy: CompiledPolicy,
        reference: ReferenceIndex,
        state: TriageState,
        now: datetime,
    ) -> Triaging:
        route_fields = signal.route_fields()
        route = route_signal(signal, policy.routes, route_fields)
        fields = with_subject(route_fields, signal)
        rules = policy.triage.rules(fields.get("kind"))
        return cls(signal, policy, reference, state, now, fields, rules, route, route.priority)

    def suppressed(self, reason: SuppressionReason, rule_key: str, detail: str) -> TriageOutcome:
        """The outcome of a signal suppressed by this step: at the route's own priority."""
        self.steps.append(Step(reason.value, "suppressed", detail))
        return TriageOutcome(
            self.signal, Action.suppress, self.route, self.route.priority, tuple(self.steps),
            suppression=Suppression(reason, rule_key, detail), violation_key=self.violation_key,
        )  # fmt: skip

    def created(self) -> TriageOutcome:
        """The outcome once every step has let the signal through: a new order."""
        return TriageOutcome(
            self.signal, Action.create, self.route, self.priority, tuple(self.steps),
            dedupe_key=self.dedupe_key, suggested_disposition=self.disposition,
            violation_key=self.violation_key, related=self.related,
        )  # fmt: skip


#: A step: None to go on, or the outcome that ends the triage.
TriageStep = Callable[[Triaging], TriageOutcome | None]


def with_subject(route_fields: dict[str, FieldValue], signal: Signal) -> dict[str, FieldValue]:
    return {**route_fields, "plate": signal.plate, "enterprise_id": signal.enterprise_id}


def mute_window(t: Triaging) -> TriageOutcome | None:
    """A platform's signals during maintenance or tests make no order."""
    platform = t.signal.attributes.get("platform_id")
    for window in t.policy.triage.source.mute_windows:
        if platform == window.platform_id and window.starts_at <= t.signal.occurred_at < window.ends_at:
            detail = f"platform {platform} muted: {window.reason}"
            return t.suppressed(SuppressionReason.mute_window, window.key, detail)
    t.steps.append(_NO_MUTE_WINDOW)
    return None


def whitelist(t: Triaging) -> TriageOutcome | None:
    """A vouched-for plate or enterprise makes no order, or a review order; never for
    complaints, which always get an answer (件件有回音)."""
    complaint = t.signal.kind is SignalKind.complaint
    entry = t.reference.whitelisted(t.signal, t.now) if not complaint else None
    if entry is not None and entry.expires_at <= t.now:
        t.steps.append(Step("whitelist", "pass", f"whitelist entry expired {entry.expires_at.isoformat()}"))
    elif entry is not None and entry.action == "suppress":
        return t.suppressed(SuppressionReason.whitelist, "whitelist", _whitelist_detail(entry))
    elif entry is not None:
        route = t.route
        t.route = RouteDecision(
            COMMAND_CENTER, route.priority, WHITELIST_REVIEW_KEY, (*route.path, WHITELIST_REVIEW_KEY),
            reason=f"whitelisted, to be re-checked by the command center: {_whitelist_detail(entry)}",
        )  # fmt: skip
        t.steps.append(Step("whitelist", "review", _whitelist_detail(entry)))
    else:
        t.steps.append(_COMPLAINTS_ANSWERED if complaint else _NOT_WHITELISTED)
    return None


def threshold(t: Triaging) -> TriageOutcome | None:
    """Signals under the policy's thresholds make no order: the first matching rule decides."""
    for rule, tests in t.rules.suppress:
        if passes(tests, t.fields):
            return t.suppressed(SuppressionReason.threshold, rule.key, rule.reason)
    t.steps.append(_NO_THRESHOLD)
    return None


def route(t: Triaging) -> TriageOutcome | None:
    """Records the routing tree's choice (made by ``Triaging.start``, changed by a review)."""
    t.steps.append(Step("route", t.route.unit, f"{' > '.join(t.route.path)}: {t.route.reason}"))
    return None


def priority(t: Triaging) -> TriageOutcome | None:
    """Priority rules only raise the route's priority; key supervision raises it one level more."""
    current = t.route.priority
    for rule, tests in t.rules.priority:
        if _RANK[rule.priority] < _RANK[current] and passes(tests, t.fields):
            current = rule.priority
            t.steps.append(Step("priority", current.value, f"rule {rule.key}"))
    supervised = t.reference.key_supervision_reason(t.signal.enterprise_id)
    if supervised and t.policy.triage.source.raise_key_supervision and current != Priority.P1:
        current = Priority(f"P{max(1, _RANK[current] - 1)}")
        t.steps.append(Step("priority", current.value, f"enterprise under key supervision ({supervised})"))
    t.steps.append(_FINAL_PRIORITY[current])
    t.priority = current
    return None


def dedupe(t: Triaging) -> TriageOutcome | None:
    """An open order with the same key, seen within the window, absorbs the signal."""
    window = t.policy.triage.dedupe.get(t.signal.kind)
    key = t.dedupe_key = dedupe_key_of(t.signal, window.rule.key, t.fields) if window is not None else None
    if window is None or key is None:
        t.steps.append(_NO_DEDUPE_KEY)
        return None
    open_order = t.state.open_order(key, t.signal.occurred_at - window.window)
    if open_order is None:
        t.steps.append(Step("dedupe", "new", f"no open order with key {key} {window.seen}"))
        return None
    t.steps.append(Step("dedupe", "merge", f"open order {open_order.id} has key {key}, {window.seen}"))
    return TriageOutcome(
        t.signal, Action.merge, t.route, t.priority, tuple(t.steps), dedupe_key=key, merge_into=open_order
    )


def dedupe_key_of(signal: Signal, key_fields: list[str], fields: Mapping[str, FieldValue]) -> str | None:
    """The kind and the key fields' values; None if one is missing or empty."""
    values = [fields.get(name) for name in key_fields]
    if any(value is None or value == "" for value in values):
        return None
    return "|".join([signal.kind.value, *(str(value) for value in values)])


def minor_violation(t: Triaging) -> TriageOutcome | None:
    """A first minor violation gets a warning (or no order), not a case; the first matching
    rule decides, and a repeat within its lookback is handled as usual."""
    subject = t.signal.plate or t.signal.enterprise_id
    for rule, tests, lookback in t.rules.minor_violations if subject is not None else ():
        if not passes(tests, t.fields):
            continue
        t.violation_key = f"{rule.key}:{subject}"
        earlier = t.state.prior_violations(t.violation_key, t.now - lookback)
        if earlier:
            reason = f"{earlier} earlier within {rule.lookback_days} days"
            t.steps.append(Step("minor_violation", "repeat", reason))
        elif rule.action == "suppress":
            return t.suppressed(
                SuppressionReason.minor_violation, rule.key, "first minor violation: no order"
            )
        else:
            t.disposition = WARNING_DISPOSITION
            reason = f"first minor violation ({rule.key}): warning suggested"
            t.steps.append(Step("minor_violation", "warn", reason))
        break
    return None


def correlation(t: Triaging) -> TriageOutcome | None:
    """Other open orders on the same plate or enterprise are linked: at most ``max_related``,
    the newest (plate first); the rest are counted."""
    most = t.policy.triage.source.correlation.max_related
    related = t.state.related_orders(t.signal.plate, t.signal.enterprise_id, most)
    t.related = related.ids
    n = related.unlinked
    if related.ids:
        reason = f"open orders on the same subject: {', '.join(related.ids)}"
        if n:
            reason += f" (and {n} more open {_orders(n)} on the same subject, not linked)"
        t.steps.append(Step("correlation", "linked", reason))
    elif n:  # max_related is 0
        reason = f"{n} open {_orders(n)} on the same subject, not linked: max_related is {most}"
        t.steps.append(Step("correlation", "not_linked", reason))
    return None


#: The chain ``triage`` runs, in order.
STEPS: tuple[TriageStep, ...] = (
    mute_window,
    whitelist,
    threshold,
    route,
    priority,
    dedupe,
    minor_violation,
    correlation,
)

_RANK = {p: int(p.value[1]) for p in Priority}

_NO_MUTE_WINDOW = Step("mute_window", "pass", "no mute window covers this platform and time")
_COMPLAINTS_ANSWERED = Step("whitelist", "pass", "complaints are answered whatever the whitelist says")
_NOT_WHITELISTED = Step("whitelist", "pass", "plate and enterprise not whitelisted")
_NO_THRESHOLD = Step("threshold", "pass", "no suppression threshold matched")
_FINAL_PRIORITY = {p: Step("priority", p.value, "final priority") for p in Priority}
_NO_DEDUPE_KEY = Step("dedupe", "new", "no dedupe rule for this kind, or a key field is missing")


def _orders(count: int) -> str:
    return "order" if count == 1 else "orders"


def _whitelist_detail(entry: WhitelistEntry) -> str:
    return f"{entry.reason} (vouched for by {entry.owner}, until {entry.expires_at.date().isoformat()})"
