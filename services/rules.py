"""The policy tools behind ``wo rules explain`` and ``wo rules replay``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workorder_pipeline.processors.admission import Admitted, Limits, admit, decide
from workorder_pipeline.processors.calendar import WorkCalendar
from workorder_pipeline.processors.compiled_policy import CompiledPolicy, compile_policy
from workorder_pipeline.processors.intake import Rejection
from workorder_pipeline.processors.replay import ReplayReport, replay
from workorder_pipeline.processors.triage import Action, BatchTriageState, ReferenceIndex, TriageOutcome
from workorder_pipeline.processors.workorders import open_work_order
from workorder_pipeline.schemas.inbound import CONTRACTS
from workorder_pipeline.schemas.policy import Policy, ReferenceData
from workorder_pipeline.schemas.signal import Signal, SourceKey
from workorder_pipeline.schemas.workorder import WorkOrder
from workorder_pipeline.services.intake import Intake
from workorder_pipeline.storage.repository import WorkOrderRepository


@dataclass(frozen=True, slots=True)
class Explanation:
    signal: Signal
    outcome: TriageOutcome
    with_state: bool
    #: The order a create would register (its deadline counted from the receipt, ``now``).
    order: WorkOrder | None = None
    time_limit: str = ""
    #: The order (or "suppressed") this very signal was already recorded under: a re-delivery.
    already_recorded_as: str | None = None


def explain(
    raw: bytes,
    policy: CompiledPolicy,
    reference: ReferenceData,
    now: datetime,
    calendar: WorkCalendar,
    repository: WorkOrderRepository | None = None,
    limits: Limits | None = None,
    contract: str | None = None,
) -> Explanation | Rejection:
    """What the worker would do with ``raw`` received ``now`` on the topic carrying
    ``contract`` (default: the one the message names), by the worker's own steps (``admit``,
    ``decide``, ``open_work_order``) under its ``limits``; with a repository, against its
    open orders (read only), else as if nothing were open."""
    index = ReferenceIndex(reference)
    admitted = admit(raw, contract or _claimed_contract(raw), index, now, limits or Limits())
    if isinstance(admitted, Rejection):
        return admitted
    signal = admitted.signal

    def decide_with(state: BatchTriageState) -> TriageOutcome:
        return decide(admitted, policy, index, state, now)

    recorded: str | None = None
    if repository is None:
        outcome = decide_with(BatchTriageState())
    else:
        intake = Intake(policy, repository, {}, reference=lambda: reference, calendar=calendar)
        key = SourceKey.of(signal)
        with repository.read_only(now) as batch:
            outcome, known = decide_with(intake.load_state(batch, [signal])), batch.known_sources([key])
        if key in known:
            recorded = known[key] or "suppressed"
    if outcome.action is not Action.create:
        return Explanation(signal, outcome, repository is not None, already_recorded_as=recorded)
    deadlines = policy.source.deadlines
    order = open_work_order(outcome, deadlines, calendar, now)
    limit = str(deadlines.limit(signal.kind, outcome.priority))
    return Explanation(signal, outcome, repository is not None, order, limit, recorded)


def replay_stored(
    repository: WorkOrderRepository,
    received_from: datetime,
    received_to: datetime,
    current: Policy,
    candidate: Policy,
    reference: ReferenceData,
    now: datetime,
    limits: Limits | None = None,
) -> ReplayReport:
    """Stored signals received in [from, to) through both policies; nothing is written.
    Each is admitted as at its receipt (an event too old then stays ``stale``)."""
    index = ReferenceIndex(reference)
    admitted = admitted_from_stored(repository.stored_signals(received_from, received_to), index, limits)
    return replay(admitted, compile_policy(current), compile_policy(candidate), index, now)


def admitted_from_stored(
    stored: Sequence[tuple[dict[str, Any], datetime]], index: ReferenceIndex, limits: Limits | None = None
) -> list[Admitted]:
    """Stored payloads with their receipt times, admitted again as the worker admitted them."""
    admitted = []
    for payload, received_at in stored:
        raw = json.dumps(payload, ensure_ascii=False).encode()
        again = admit(raw, str(payload.get("schema")), index, received_at, limits or Limits())
        if not isinstance(again, Rejection):
            admitted.append(again)
    return admitted


def _claimed_contract(raw: bytes) -> str:
    """The contract a message names, or the first one (decoding then says what is wrong)."""
    try:
        claimed = json.loads(raw).get("schema")
    except (ValueError, AttributeError, RecursionError):
        claimed = None
    return claimed if isinstance(claimed, str) and claimed in CONTRACTS else next(iter(CONTRACTS))
