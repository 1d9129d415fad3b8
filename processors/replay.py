"""Replay: run signals through two policies and say what would change. Pure: no state is written.

Each policy starts from an empty triage state and sees the signals in event-time order,
as if they arrived in that order; orders open before the first signal are not known. A
signal goes through ``decide``, as in the worker: one stale at its receipt stays a ``stale``
suppression under both policies (the age limit is a setting, not policy).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from workorder_pipeline.processors.admission import Admitted, decide
from workorder_pipeline.processors.compiled_policy import CompiledPolicy
from workorder_pipeline.processors.triage import Action, BatchTriageState, ReferenceIndex, TriageOutcome
from workorder_pipeline.processors.workorders import work_order_id


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
    admitted: Sequence[Admitted],
    current: CompiledPolicy,
    candidate: CompiledPolicy,
    reference: ReferenceIndex,
    now: datetime,
) -> ReplayReport:
    report = ReplayReport(signals=len(admitted))
    ordered = sorted(admitted, key=lambda a: (a.signal.occurred_at, a.signal.kind.value, a.signal.source_id))
    states = (BatchTriageState(), BatchTriageState())
    for item in ordered:
        signal = item.signal
        verdicts = []
        for policy, state, counts in (
            (current, states[0], report.current),
            (candidate, states[1], report.candidate),
        ):
            outcome = decide(item, policy, reference, state, now)
            created = work_order_id(signal) if outcome.action is Action.create else None
            state.record(outcome, created, now)
            counts[outcome.action] += 1
            verdicts.append(Verdict.of(outcome))
        if verdicts[0] != verdicts[1]:
            report.changes.append(Change(signal.source_id, signal.kind.value, verdicts[0], verdicts[1]))
    return report
