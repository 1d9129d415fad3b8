"""Replay: run signals through two policies and say what would change. Pure: no state is written.

Each policy starts from an empty triage state and sees the signals in event-time order,
as if they arrived in that order; orders open before the first signal are not known.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from processors.compiled_policy import CompiledPolicy
from processors.triage import Action, BatchTriageState, ReferenceIndex, TriageOutcome, triage
from processors.workorders import work_order_id
from schemas.signal import Signal


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a policy made of one signal, in the terms a supervisor compares."""

    action: Action
    unit: str
    route_key: str
    priority: str
    reason: str

    @classmethod
    def of(cls, outcome: TriageOutcome) -> Verdict:
        reason = outcome.suppression.rule_key if outcome.suppression else ""
        return cls(
            outcome.action, outcome.route.unit, outcome.route.route_key, outcome.priority.value, reason
        )

    def __str__(self) -> str:
        if self.action is Action.suppress:
            return f"suppressed ({self.reason})"
        verb = "merged" if self.action is Action.merge else "created"
        return f"{verb} for {self.unit} via {self.route_key} at {self.priority}"


@dataclass(frozen=True, slots=True)
class Change:
    source_id: str
    kind: str
    current: Verdict
    candidate: Verdict


@dataclass(slots=True)
class ReplayReport:
    signals: int = 0
    current: Counter[Action] = field(default_factory=Counter)
    candidate: Counter[Action] = field(default_factory=Counter)
    changes: list[Change] = field(default_factory=list)

    def changed(self, aspect: str) -> int:
        """Signals whose ``action``, ``unit``, ``route_key`` or ``priority`` differs."""
        return sum(1 for c in self.changes if getattr(c.current, aspect) != getattr(c.candidate, aspect))


def replay(
    signals: Sequence[Signal],
    current: CompiledPolicy,
    candidate: CompiledPolicy,
    reference: ReferenceIndex,
    now: datetime,
) -> ReplayReport:
    report = ReplayReport(signals=len(signals))
    ordered = sorted(signals, key=lambda s: (s.occurred_at, s.kind.value, s.source_id))
    states = (BatchTriageState(), BatchTriageState())
    for signal in ordered:
        verdicts = []
        for policy, state, counts in (
            (current, states[0], report.current),
            (candidate, states[1], report.candidate),
        ):
            outcome = triage(signal, policy, reference, state, now)
            created = work_order_id(signal) if outcome.action is Action.create else None
            state.record(outcome, created, now)
            counts[outcome.action] += 1
            verdicts.append(Verdict.of(outcome))
        if verdicts[0] != verdicts[1]:
            report.changes.append(Change(signal.source_id, signal.kind.value, verdicts[0], verdicts[1]))
    return report
