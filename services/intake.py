"""The intake service: a batch of inbound messages in, orders to dispatch and dead letters out.

It ties the pure processors (decode, normalize, route, open an order) to a unit of work
(services.ports.IntakeStore), and knows nothing of Kafka or metrics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from workorder_pipeline.config.settings import ProcessingGuarantee, Settings
from workorder_pipeline.processors.admission import Admitted, Limits, admit, decide
from workorder_pipeline.processors.calendar import WorkCalendar
from workorder_pipeline.processors.compiled_policy import CompiledPolicy
from workorder_pipeline.processors.intake import DEFAULT_MAX_MESSAGE_BYTES, EventTime, Rejection
from workorder_pipeline.processors.merging import BatchMerges
from workorder_pipeline.processors.next_check import first_checks
from workorder_pipeline.processors.triage import (
    Action,
    BatchTriageState,
    OpenOrder,
    ReferenceIndex,
    SuppressionReason,
    TriageOutcome,
    state_keys,
)
from workorder_pipeline.processors.workorders import open_work_order, work_order_id
from workorder_pipeline.schemas.deadletter import DeadLetter, KeptOriginal, RejectionReason
from workorder_pipeline.schemas.policy import ReferenceData
from workorder_pipeline.schemas.signal import Signal, SignalKind, SourceKey
from workorder_pipeline.schemas.workorder import PipelineEventName, WorkOrder
from workorder_pipeline.services.calendar_files import package_schedules
from workorder_pipeline.services.dead_letters import Lettered, dead_letter
from workorder_pipeline.services.intake_audit import audit_detail, suppressed_row
from workorder_pipeline.services.ports import IntakeBatch, IntakeStore
from workorder_pipeline.services.unit_of_work import once_more_if_raced


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One consumed message, as the broker delivered it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    #: None for a tombstone.
    value: bytes | None
    timestamp_ms: int | None = None
    #: The record's headers (a command's signature travels in them).
    headers: tuple[tuple[str, bytes], ...] = ()


def intake_limits(settings: Settings) -> Limits:
    """The limits the worker decodes and judges event times with (``wo rules explain`` too)."""
    return Limits(
        settings.max_message_bytes,
        timedelta(days=settings.max_event_age_days),
        timedelta(minutes=settings.max_event_lead_minutes),
    )


@dataclass(slots=True)
class IntakeResult:
    #: Orders to publish on the dispatched topic (new ones and never-published ones).
    to_dispatch: list[WorkOrder] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    #: The originals of redacted dead letters, kept in the batch's transaction.
    originals: list[KeptOriginal] = field(default_factory=list)
    received: Counter[SignalKind] = field(default_factory=Counter)
    rejected: Counter[RejectionReason] = field(default_factory=Counter)
    created: list[WorkOrder] = field(default_factory=list)
    #: Signals merged into an open order (dedupe), by kind.
    merged: Counter[SignalKind] = field(default_factory=Counter)
    suppressed: Counter[SuppressionReason] = field(default_factory=Counter)
    #: Complaints older than the age limit that made (or joined) an order all the same.
    late: Counter[SignalKind] = field(default_factory=Counter)
    #: Signals whose publisher id was already recorded: re-sent or re-delivered.
    redelivered: Counter[SignalKind] = field(default_factory=Counter)
    #: Publishing platform (see publishing_platform) -> newest event time of its valid signals.
    platforms: dict[str, datetime] = field(default_factory=dict)
    #: Order to dispatch -> (topic, partition) of the message it was registered from: exactly
    #: once, it is published in the transaction that commits that partition's offsets.
    origins: dict[str, tuple[str, int]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Valid:
    message: InboundMessage
    admitted: Admitted
    signal: Signal
    #: Read five times per signal: built once.
    source_key: SourceKey

    @classmethod
    def of(cls, message: InboundMessage, admitted: Admitted) -> _Valid:
        return cls(message, admitted, admitted.signal, SourceKey.of(admitted.signal))


@dataclass(frozen=True, slots=True)
class Admission:
    """A batch decoded and validated (``Intake.admit``), to be recorded (``Intake.record``)."""

    #: What admission found: dead letters, counts received and rejected, platforms heard.
    found: IntakeResult
    valid: list[_Valid]
    reference: ReferenceIndex
    #: The batch's receipt.
    now: datetime


@dataclass(frozen=True, slots=True)
class _Context:
    """What triage of one signal reads and adds to, within one attempt at a batch."""

    reference: ReferenceIndex
    state: BatchTriageState
    merges: BatchMerges
    result: IntakeResult


class Intake:
    def __init__(
        self,
        policy: CompiledPolicy,
        store: IntakeStore,
        contracts_by_topic: Mapping[str, str],
        reference: Callable[[], ReferenceData] = ReferenceData,
        calendar: WorkCalendar | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_event_age: timedelta = timedelta(days=400),
        max_event_lead: timedelta = timedelta(hours=1),
        guarantee: ProcessingGuarantee = ProcessingGuarantee.at_least_once,
    ) -> None:
        """``reference`` returns the reference lists in force (they may be reloaded between batches)."""
        self.policy = policy
        self._store = store
        self._contracts = dict(contracts_by_topic)
        self._reference = reference
        # Default: the official schedules the chinese-calendar package knows.
        self.calendar = calendar or WorkCalendar(package_schedules())
        self._indexed: tuple[ReferenceData, ReferenceIndex] | None = None
        self.limits = Limits(max_message_bytes, max_event_age, max_event_lead)
        self._guarantee = guarantee

    def handle(self, messages: Sequence[InboundMessage], now: datetime) -> IntakeResult:
        """Validate, triage and record a batch: every message ends as an order, a merge, a
        recorded suppression, a known re-delivery or a dead letter."""
        return self.record(self.admit(messages, now))

    def admit(self, messages: Sequence[InboundMessage], now: datetime) -> Admission:
        """The batch decoded and validated, ``now`` its receipt: nothing stored is read, so a
        batch may be admitted while the one before it is still being published and marked."""
        admitted = IntakeResult()
        reference = self.reference_index()
        valid: list[_Valid] = []
        for message in messages:
            outcome = admit(message.value, self._contracts[message.topic], reference, now, self.limits)
            if isinstance(outcome, Rejection):
                admitted.rejected[outcome.reason] += 1
                _add_letter(admitted, self._dead_letter(message, outcome, now))
                continue
            signal = outcome.signal
            admitted.received[signal.kind] += 1
            platform, at = publishing_platform(signal), signal.occurred_at
            admitted.platforms[platform] = max(at, admitted.platforms.get(platform, at))
            valid.append(_Valid.of(message, outcome))
        return Admission(admitted, valid, reference, now)

    def record(self, admission: Admission) -> IntakeResult:
        """Triage and record an admitted batch, in one transaction (done again if another
        worker won a race for one of its dedupe keys)."""
        return once_more_if_raced(
            lambda: self._record(admission.found, admission.valid, admission.reference, admission.now)
        )

    def _record(
        self, admitted: IntakeResult, valid: list[_Valid], reference: ReferenceIndex, now: datetime
    ) -> IntakeResult:
        """One attempt at recording the batch, in one transaction: its own result, on top of
        what admission found (a failed attempt's counts are dropped with it)."""
        result = replace(
            admitted,
            created=[],
            to_dispatch=[],
            merged=Counter(),
            suppressed=Counter(),
            late=Counter(),
            redelivered=Counter(),
            origins={},
        )
        with self._store.intake_batch(now) as batch:
            # Before the dead letters are published (a re-delivery keeps them once).
            batch.keep_originals(result.originals)
            batch.log_dead_letters(result.dead_letters)
            batch.record_platforms(result.platforms)  # silence is judged on it (streams/platform_watch)
            known = batch.known_sources([item.source_key for item in valid])
            fresh: dict[SourceKey, _Valid] = {}
            for item in valid:
                if item.source_key in known or item.source_key in fresh:
                    result.redelivered[item.signal.kind] += 1
                else:
                    fresh[item.source_key] = item
            state = self.load_state(batch, [item.signal for item in fresh.values()])
            merges = BatchMerges()
            for item in fresh.values():
                self._triage_one(batch, item, _Context(reference, state, merges, result))
            # As stored: signals merged later in the batch changed orders created earlier in it.
            result.created = merges.registered()
            batch.add_orders(result.created)
            batch.add_occurrences(merges.into_earlier())
            result.to_dispatch = result.created + self._republished(batch, valid, known, result)
            if self._guarantee is ProcessingGuarantee.exactly_once:
                # Published with this batch's offsets, or the batch comes again (_republished).
                batch.mark_dispatched(result.to_dispatch, self._first_checks(result.to_dispatch))
        return result

    def _triage_one(self, batch: IntakeBatch, item: _Valid, context: _Context) -> None:
        """Decide what a fresh signal makes: an order, a merge into one, or a suppression."""
        state, result, key, kind = context.state, context.result, item.source_key, item.signal.kind
        outcome = decide(item.admitted, self.policy, context.reference, state, batch.now)
        payload = item.admitted.event.model_dump(mode="json", by_alias=True)
        position = _position(item.message)
        if item.admitted.timing is EventTime.late and outcome.action is not Action.suppress:
            result.late[kind] += 1
        if outcome.action is Action.create:
            order = self.open_order(outcome, batch.now)
            detail = audit_detail(outcome, position, due_at=order.due_at)
            batch.record_signal(
                key,
                order.id,
                payload,
                position,
                PipelineEventName.registered,
                detail,
                item.signal.region_code,
            )
            context.merges.register(order, key.source_id)
            result.origins[order.id] = (item.message.topic, item.message.partition)
            state.record(outcome, order.id, batch.now)
        elif outcome.action is Action.merge and outcome.merge_into is not None:
            target = outcome.merge_into.id
            detail = audit_detail(outcome, position)
            batch.record_signal(
                key, target, payload, position, PipelineEventName.merged, detail, item.signal.region_code
            )
            context.merges.merge(target, key.source_id, item.signal.occurred_at)
            state.record(outcome, None, batch.now)
            result.merged[kind] += 1
        elif outcome.suppression is not None:
            batch.suppress(key, suppressed_row(item.signal, outcome, payload))
            state.record(outcome, None, batch.now)
            result.suppressed[outcome.suppression.reason] += 1

    def open_order(self, outcome: TriageOutcome, now: datetime) -> WorkOrder:
        """The order ``outcome`` creates, with its deadline from ``now`` (the receipt)."""
        return open_work_order(outcome, self.policy.source.deadlines, self.calendar, now)

    def _republished(
        self, batch: IntakeBatch, valid: list[_Valid], known: dict[SourceKey, str | None], out: IntakeResult
    ) -> list[WorkOrder]:
        """Stored orders a re-delivered or re-sent signal must publish again.

        At least once: those never published (the flag is set once the broker has them).
        Exactly once: the outputs of a batch commit with its input offsets, so a message that
        comes again from the very position its order was registered from is one whose batch's
        outputs never committed: its order goes out again, in this batch's transaction; a
        publisher's re-send (another position) publishes nothing (their origins: in ``out``).
        """
        if self._guarantee is ProcessingGuarantee.at_least_once:
            return batch.undispatched(sorted({order_id for order_id in known.values() if order_id}))
        again = [item for item in valid if known.get(item.source_key)]
        if not again:
            return []
        stored = batch.source_positions([item.source_key for item in again])
        ids = {
            order_id: (item.message.topic, item.message.partition)
            for item in again
            if (order_id := work_order_id(item.signal)) == stored.get(item.source_key, ("", None))[0]
            and stored[item.source_key][1] == _position(item.message)
        }
        out.origins.update(ids)
        return batch.orders(sorted(ids))

    def load_state(self, batch: IntakeBatch, signals: list[Signal]) -> BatchTriageState:
        """What triage of ``signals`` needs to know of stored orders and earlier violations."""
        dedupe_keys: set[str] = set()
        violation_keys: set[str] = set()
        subjects: set[str] = set()
        for signal in signals:
            dedupe, violations, signal_subjects = state_keys(signal, self.policy)
            if dedupe:
                dedupe_keys.add(dedupe)
            violation_keys.update(violations)
            subjects.update(signal_subjects)
        lookback = max((rule.lookback_days for rule in self.policy.source.triage.minor_violations), default=0)
        return BatchTriageState(
            open_orders={
                key: (OpenOrder(order_id, unit), last_seen)
                for key, (order_id, unit, last_seen) in batch.open_orders_by_dedupe_key(
                    sorted(dedupe_keys)
                ).items()
            },
            violations=batch.violations(sorted(violation_keys), batch.now - timedelta(days=lookback)),
            subjects=batch.open_orders_by_subject(sorted(subjects)),
        )

    def reference_index(self) -> ReferenceIndex:
        """The reference lists in force, indexed (again only when they were reloaded)."""
        data = self._reference()
        if self._indexed is None or self._indexed[0] is not data:
            self._indexed = (data, ReferenceIndex(data))
        return self._indexed[1]

    def unprocessable(self, message: InboundMessage, error: str, now: datetime) -> IntakeResult:
        """The outcome of a message whose handling failed alone, for a reason a retry will not
        change (``error``: the error's class name, never its message): a dead letter."""
        rejection = unprocessable_rejection(error)
        result = IntakeResult(rejected=Counter([rejection.reason]))
        _add_letter(result, self._dead_letter(message, rejection, now))
        # Kept before the letter is published; a failure here is waited out or leaves both out.
        self._store.keep_originals(result.originals)
        self._store.log_dead_letters(result.dead_letters)
        return result

    def _dead_letter(self, message: InboundMessage, rejection: Rejection, now: datetime) -> Lettered:
        return dead_letter(message, rejection, now, self._contracts.get(message.topic), self.limits.max_bytes)

    def dispatched(self, orders: Sequence[WorkOrder], now: datetime) -> None:
        """Record that ``orders`` reached the dispatched topic (exactly once: done in the batch)."""
        if self._guarantee is ProcessingGuarantee.at_least_once:
            self._store.mark_dispatched(orders, now, self._first_checks(orders))

    def _first_checks(self, orders: Sequence[WorkOrder]) -> dict[str, datetime | None]:
        return first_checks(orders, self.policy.source.deadlines, self.calendar)

    def undispatched(self) -> list[WorkOrder]:
        """Orders stored but never published (exactly once: none, re-delivery publishes them)."""
        if self._guarantee is ProcessingGuarantee.exactly_once:
            return []
        return self._store.undispatched()


def _position(message: InboundMessage) -> str:
    return f"{message.topic}/{message.partition}/{message.offset}"


def combined(results: Sequence[IntakeResult]) -> IntakeResult:
    """One result for parts of a batch handled separately (in the order they were handled)."""
    if len(results) == 1:
        return results[0]
    total = IntakeResult()
    for part in results:
        total.to_dispatch += part.to_dispatch
        total.dead_letters += part.dead_letters
        total.originals += part.originals
        total.created += part.created
        total.origins.update(part.origins)
        for counts in ("received", "rejected", "merged", "suppressed", "redelivered", "late"):
            getattr(total, counts).update(getattr(part, counts))
        for platform, at in part.platforms.items():
            total.platforms[platform] = max(at, total.platforms.get(platform, at))
    return total


def publishing_platform(signal: Signal) -> str:
    """Who published the signal: a vehicle alarm's monitoring platform (its platform_id),
    ``rectification`` (suspect lists), ``checkin`` (the command center's check-in desk) or
    ``complaint-<channel>`` (12328, 12345, 12395, web, letter)."""
    if signal.kind is SignalKind.vehicle_alarm:
        return str(signal.attributes.get("platform_id"))
    if signal.kind is SignalKind.complaint:
        return f"complaint-{signal.attributes.get('channel')}"
    return {SignalKind.suspect: "rectification", SignalKind.checkin_failure: "checkin"}[signal.kind]


def unprocessable_rejection(error: str) -> Rejection:
    """Why a valid message whose handling failed alone, permanently, was set aside (``error``:
    the error's class name, never its message: it may quote values)."""
    return Rejection(RejectionReason.unprocessable, f"handling it failed: {error}")


def _add_letter(result: IntakeResult, lettered: Lettered) -> None:
    result.dead_letters.append(lettered.letter)
    if lettered.original is not None:
        result.originals.append(lettered.original)
