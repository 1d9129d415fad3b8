"""The policy tools behind ``wo rules explain`` and ``wo rules replay``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from processors.calendar import WorkCalendar
from processors.compiled_policy import CompiledPolicy, compile_policy
from processors.intake import Rejection, decode_event
from processors.replay import ReplayReport, replay
from processors.signals import to_signal
from processors.triage import BatchTriageState, ReferenceIndex, TriageOutcome, triage
from processors.workorders import deadline
from schemas.inbound import CONTRACTS
from schemas.policy import Policy, ReferenceData
from schemas.signal import Signal
from services.intake import Intake
from storage.repository import IntakeBatch, WorkOrderRepository, source_key


@dataclass(frozen=True, slots=True)
class Explanation:
    signal: Signal
    outcome: TriageOutcome
    time_limit: str
    due_at: datetime
    due_at_provisional: bool
    with_state: bool
    #: The order (or "suppressed") this very signal was already recorded under: a re-delivery.
    already_recorded_as: str | None = None


def explain(
    raw: bytes,
    policy: CompiledPolicy,
    reference: ReferenceData,
    now: datetime,
    calendar: WorkCalendar,
    repository: WorkOrderRepository | None = None,
) -> Explanation | Rejection:
    """What the pipeline would do with ``raw`` now; with a repository, against its open orders
    (read only), else as if nothing were open."""
    event = decode_event(raw, _claimed_contract(raw))
    if isinstance(event, Rejection):
        return event
    index = ReferenceIndex(reference)
    signal = to_signal(event, index.checkpoint_regions())

    def decide(state: BatchTriageState) -> TriageOutcome:
        return triage(signal, policy, index, state, now)

    recorded: str | None = None
    if repository is None:
        outcome = decide(BatchTriageState())
    else:
        intake = Intake(policy, repository, {}, reference=lambda: reference)
        key = source_key(signal.kind, signal.source_id)

        def look(batch: IntakeBatch) -> tuple[TriageOutcome, dict[str, str | None]]:
            return decide(intake.load_state(batch, [signal])), batch.known_sources([key])

        outcome, known = repository.read_only(look, now)
        if key in known:
            recorded = known[key] or "suppressed"
    deadlines = policy.source.deadlines
    limit = str(deadlines.limit(signal.kind, outcome.priority))
    due = deadline(signal, outcome.priority, deadlines, calendar, now)
    return Explanation(signal, outcome, limit, due.due_at, due.provisional, repository is not None, recorded)


def replay_stored(
    repository: WorkOrderRepository,
    received_from: datetime,
    received_to: datetime,
    current: Policy,
    candidate: Policy,
    reference: ReferenceData,
    now: datetime,
) -> ReplayReport:
    """Stored signals received in [from, to) through both policies; nothing is written."""
    index = ReferenceIndex(reference)
    signals = signals_from_payloads(repository.stored_signals(received_from, received_to), index)
    return replay(signals, compile_policy(current), compile_policy(candidate), index, now)


def signals_from_payloads(payloads: Sequence[dict[str, Any]], index: ReferenceIndex) -> list[Signal]:
    signals = []
    for payload in payloads:
        raw = json.dumps(payload, ensure_ascii=False).encode()
        event = decode_event(raw, str(payload.get("schema")))
        if not isinstance(event, Rejection):
            signals.append(to_signal(event, index.checkpoint_regions()))
    return signals


def _claimed_contract(raw: bytes) -> str:
    """The contract a message names, or the first one (decoding then says what is wrong)."""
    try:
        claimed = json.loads(raw).get("schema")
    except (ValueError, AttributeError, RecursionError):
        claimed = None
    return claimed if isinstance(claimed, str) and claimed in CONTRACTS else next(iter(CONTRACTS))
