"""The policy compiled once, when it is loaded: what triage and routing read for every signal.

As Alertmanager builds its routing tree from the configuration once and hands it to the
dispatcher, ``compile_policy`` prepares the routing tree and the triage rules (matchers
compiled, rules grouped by the signal kind they can match, windows as timedeltas); the
loader (``services.policy_set``) calls it, and the hot path never reads the raw policy's
matchers again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from workorder_pipeline.processors.routing import CompiledMatch, RoutingPlan, compile_routes, compiled
from workorder_pipeline.schemas.policy import (
    DedupeRule,
    Matcher,
    MinorViolationRule,
    Policy,
    PriorityRule,
    SuppressRule,
    Triage,
)
from workorder_pipeline.schemas.signal import FieldValue, SignalKind


@dataclass(frozen=True, slots=True)
class KindRules:
    """The triage rules that can match a signal whose ``kind`` field has one value, compiled,
    in policy order. Their ``kind`` matchers are applied already (and left out of the tests)."""

    suppress: tuple[tuple[SuppressRule, CompiledMatch], ...]
    priority: tuple[tuple[PriorityRule, CompiledMatch], ...]
    minor_violations: tuple[tuple[MinorViolationRule, CompiledMatch, timedelta], ...]


@dataclass(frozen=True, slots=True)
class DedupeWindow:
    rule: DedupeRule
    window: timedelta
    #: How the audit trail words the window.
    seen: str


@dataclass(frozen=True, slots=True)
class TriagePlan:
    """The triage section prepared for every signal: its rules compiled, grouped by kind."""

    #: The section as written (mute windows, key supervision, correlation).
    source: Triage
    by_kind: Mapping[str, KindRules]
    #: For a ``kind`` field that is no kind's value (an attribute named ``kind``): every rule.
    every_rule: KindRules
    dedupe: Mapping[SignalKind, DedupeWindow]

    def rules(self, kind: FieldValue) -> KindRules:
        return self.by_kind.get(kind, self.every_rule) if type(kind) is str else self.every_rule


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """A policy and what is compiled from it, built once per load."""

    source: Policy
    routes: RoutingPlan
    triage: TriagePlan


def compile_policy(policy: Policy) -> CompiledPolicy:
    return CompiledPolicy(policy, compile_routes(policy.routing, policy.units), compile_triage(policy.triage))


def compile_triage(policy: Triage) -> TriagePlan:
    return TriagePlan(
        source=policy,
        by_kind={kind.value: _kind_rules(policy, kind.value) for kind in SignalKind},
        every_rule=_kind_rules(policy, None),
        dedupe={kind: _dedupe_window(rule) for kind, rule in policy.dedupe.items()},
    )


def _dedupe_window(rule: DedupeRule) -> DedupeWindow:
    return DedupeWindow(rule, timedelta(hours=rule.window_hours), f"seen within {rule.window_hours:g} h")


def _kind_rules(policy: Triage, kind: str | None) -> KindRules:
    """The rules that can match a signal of ``kind`` (None: any), compiled."""

    def tests(match: dict[str, Matcher]) -> CompiledMatch | None:
        """``match``'s tests, less those of ``kind`` if it passes them; None if it fails them."""
        everything = compiled(match)
        if kind is None:
            return everything
        if not all(test(kind) for name, test in everything if name == "kind"):
            return None
        return tuple((name, test) for name, test in everything if name != "kind")

    return KindRules(
        suppress=tuple((r, t) for r in policy.suppress if (t := tests(r.match)) is not None),
        priority=tuple((r, t) for r in policy.priority_rules if (t := tests(r.match)) is not None),
        minor_violations=tuple(
            (r, t, timedelta(days=r.lookback_days))
            for r in policy.minor_violations
            if (t := tests(r.match)) is not None
        ),
    )
