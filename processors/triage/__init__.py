"""``triage``: decide what one signal becomes: a new order, a merge into an open one, or nothing.

Steps, in order, each recorded with its reason (``wo rules explain`` prints them); each is a
function of ``processors.triage.steps`` with one signature, run in this order by ``triage``:

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
caller stores and counts. The policy comes compiled (``processors.compiled_policy``), built
once when it is loaded. State (open orders, earlier violations) comes in through
``TriageState``; ``BatchTriageState`` keeps it in memory so a batch, or a replay, sees
its own earlier decisions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from workorder_pipeline.processors.compiled_policy import CompiledPolicy
from workorder_pipeline.processors.routing import matches_all, passes
from workorder_pipeline.processors.triage.outcome import (
    WARNING_DISPOSITION,
    WHITELIST_REVIEW_KEY,
    Action,
    OpenOrder,
    RelatedOrders,
    Step,
    Suppression,
    SuppressionReason,
    TriageOutcome,
    TriageState,
)
from workorder_pipeline.processors.triage.reference import ReferenceIndex
from workorder_pipeline.processors.triage.state import BatchTriageState, subjects_of
from workorder_pipeline.processors.triage.steps import STEPS, Triaging, dedupe_key_of, with_subject
from workorder_pipeline.schemas.policy import MinorViolationRule
from workorder_pipeline.schemas.signal import FieldValue, Signal

__all__ = [
    "WARNING_DISPOSITION",
    "WHITELIST_REVIEW_KEY",
    "Action",
    "BatchTriageState",
    "OpenOrder",
    "ReferenceIndex",
    "RelatedOrders",
    "Step",
    "Suppression",
    "SuppressionReason",
    "TriageOutcome",
    "TriageState",
    "dedupe_key",
    "signal_fields",
    "state_keys",
    "triage",
    "violation_key",
]


def triage(
    signal: Signal, policy: CompiledPolicy, reference: ReferenceIndex, state: TriageState, now: datetime
) -> TriageOutcome:
    """Run the steps in order: the first that decides ends the triage; past the last, a new order."""
    triaging = Triaging.start(signal, policy, reference, state, now)
    for step in STEPS:
        decided = step(triaging)
        if decided is not None:
            return decided
    return triaging.created()


def signal_fields(signal: Signal) -> dict[str, FieldValue]:
    """What triage rules can match: the route fields plus the subject's identity."""
    return with_subject(signal.route_fields(), signal)


def dedupe_key(
    signal: Signal, policy: CompiledPolicy, fields: Mapping[str, FieldValue] | None = None
) -> str | None:
    """The key of the open order ``signal`` would merge into; ``fields``: its ``signal_fields``."""
    window = policy.triage.dedupe.get(signal.kind)
    if window is None:
        return None
    return dedupe_key_of(signal, window.rule.key, signal_fields(signal) if fields is None else fields)


def violation_key(rule: MinorViolationRule, signal: Signal, fields: Mapping[str, FieldValue]) -> str | None:
    """What a first-violation check counts under: the rule and the offending plate or enterprise."""
    subject = signal.plate or signal.enterprise_id
    if subject is None or not matches_all(rule.match, fields):
        return None
    return f"{rule.key}:{subject}"


def state_keys(signal: Signal, policy: CompiledPolicy) -> tuple[str | None, list[str], list[str]]:
    """What triage of ``signal`` may look up: its dedupe key, candidate violation keys, subjects."""
    fields = signal_fields(signal)
    subject = signal.plate or signal.enterprise_id
    violations = (
        [
            f"{rule.key}:{subject}"
            for rule, tests, _ in policy.triage.rules(fields.get("kind")).minor_violations
            if passes(tests, fields)
        ]
        if subject is not None
        else []
    )
    return dedupe_key(signal, policy, fields), violations, list(subjects_of(signal))
