"""One inbound message, from its bytes to what the pipeline decides: the worker's path.

``admit`` decodes a message under the limits and judges its event time; ``decide`` turns
what was admitted into a triage outcome. The intake service runs every message through
both (and ``open_work_order`` for the deadline), and so does ``wo rules explain``: what
explain prints is what the worker does, because it is the same code.

Event times (``processors.intake.event_time``): too far ahead is a dead letter; too old is
a ``stale`` suppression, no order, except for a complaint, which makes its order all the
same with the lateness in its audit trail (every ticket is answered).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from workorder_pipeline.processors.compiled_policy import CompiledPolicy
from workorder_pipeline.processors.intake import (
    DEFAULT_MAX_MESSAGE_BYTES,
    EventTime,
    Rejection,
    decode_event,
    event_time,
)
from workorder_pipeline.processors.routing import route_signal
from workorder_pipeline.processors.signals import to_signal
from workorder_pipeline.processors.triage import (
    Action,
    ReferenceIndex,
    Step,
    Suppression,
    SuppressionReason,
    TriageOutcome,
    TriageState,
    triage,
)
from workorder_pipeline.schemas.inbound import InboundEvent
from workorder_pipeline.schemas.signal import Signal

#: The rule key a stale suppression is recorded under: the setting that decides it.
STALE_RULE_KEY = "max_event_age"
EVENT_TIME_STEP = "event_time"


@dataclass(frozen=True, slots=True)
class Limits:
    """What the worker accepts: message size and how far an event time may be from now."""

    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_age: timedelta = timedelta(days=400)
    max_lead: timedelta = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Admitted:
    """A valid message: its event, the normalized signal, and how its time stands."""

    event: InboundEvent
    signal: Signal
    timing: EventTime = EventTime.on_time
    #: Why it is late or stale (empty when on time).
    timing_detail: str = ""


def admit(
    raw: bytes | None, contract: str, reference: ReferenceIndex, now: datetime, limits: Limits
) -> Admitted | Rejection:
    """``raw`` as the topic carrying ``contract`` receives it ``now``: admitted, or a rejection."""
    event = decode_event(raw, contract, max_bytes=limits.max_bytes)
    if isinstance(event, Rejection):
        return event
    signal = to_signal(event, reference.checkpoint_regions())
    judged = event_time(signal.kind, signal.occurred_at, now, limits.max_age, limits.max_lead)
    if isinstance(judged, Rejection):
        return judged
    timing, detail = judged
    return Admitted(event, signal, timing, detail)


def decide(
    admitted: Admitted, policy: CompiledPolicy, reference: ReferenceIndex, state: TriageState, now: datetime
) -> TriageOutcome:
    """What ``admitted`` becomes: triage's outcome, a stale suppression before triage, or
    (late) triage's outcome with the lateness as its first step."""
    signal = admitted.signal
    if admitted.timing is EventTime.stale:
        return stale_outcome(signal, policy, admitted.timing_detail)
    outcome = triage(signal, policy, reference, state, now)
    if admitted.timing is EventTime.late:
        late = Step(EVENT_TIME_STEP, EventTime.late.value, admitted.timing_detail)
        return replace(outcome, steps=(late, *outcome.steps))
    return outcome


def stale_outcome(signal: Signal, policy: CompiledPolicy, detail: str) -> TriageOutcome:
    """A signal too old to act on: suppressed as ``stale``, with the unit its route names
    (reports by unit count it there); no other rule is looked at, and no state is read."""
    route = route_signal(signal, policy.routes, signal.route_fields())
    return TriageOutcome(
        signal,
        Action.suppress,
        route,
        route.priority,
        (Step(EVENT_TIME_STEP, EventTime.stale.value, detail),),
        suppression=Suppression(SuppressionReason.stale, STALE_RULE_KEY, detail),
    )
