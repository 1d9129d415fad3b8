"""Lifecycle commands: from Kafka (``workorders.commands``) and the HTTP API, one handler.

A command is decided by the pure state machine (processors.lifecycle) against the order
as stored, and its effect (or its refusal) is recorded in one transaction with its
command_id, so a re-sent command has no second effect. Each outcome becomes a lifecycle
event; an order reassigned or extended is published again to its unit.

The announcements go through the outbox, written in the command's transaction. At least
once, the relay (streams/background) publishes them after it commits. Exactly once, they
are stored with the command's position and published by the commands consumer in one Kafka
transaction with the command's offset (``CommandResult.announcements``); a command that
comes again from a position the outbox holds is one whose transaction never committed to
Kafka: its announcements are returned again and it is not handled again.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from workorder_pipeline.config.settings import ProcessingGuarantee
from workorder_pipeline.processors.command_signing import SignatureRefusal, check
from workorder_pipeline.processors.intake import COMMAND_CONTRACT, Rejection, decode_command
from workorder_pipeline.processors.lifecycle import (
    Clocks,
    LifecyclePolicy,
    OrderState,
    Refusal,
    Transition,
    decide,
)
from workorder_pipeline.schemas.commands import (
    EscalationLevel,
    LifecycleEvent,
    LifecycleEventName,
    Outcome,
    RefusalCode,
    WorkOrderCommand,
)
from workorder_pipeline.schemas.deadletter import DeadLetter, KeptOriginal
from workorder_pipeline.schemas.senders import SenderKeys
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import Priority, WorkOrder, WorkOrderStatus
from workorder_pipeline.services.dead_letters import Lettered, dead_letter
from workorder_pipeline.services.failures import error_name, transient
from workorder_pipeline.services.intake import InboundMessage, unprocessable_rejection
from workorder_pipeline.services.ports import Announcement, CommandBatch, CommandStore, OutboxTopic
from workorder_pipeline.services.unit_of_work import once_more_if_raced


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    command: WorkOrderCommand
    outcome: Outcome
    event: LifecycleEvent | None
    refusal: Refusal | None = None
    #: The order after the command (None when the order does not exist).
    order: WorkOrder | None = None
    redispatch: bool = False


@dataclass(slots=True)
class CommandResult:
    outcomes: list[CommandOutcome] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    applied: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    #: Exactly once: (outbox topic, key, payload) to publish with the commands' offsets.
    announcements: list[Announcement] = field(default_factory=list)

    @property
    def events(self) -> list[LifecycleEvent]:
        return [o.event for o in self.outcomes if o.event is not None]

    @property
    def to_dispatch(self) -> list[WorkOrder]:
        return [o.order for o in self.outcomes if o.redispatch and o.order is not None]


log = structlog.get_logger(__name__)


class CommandHandler:
    def __init__(
        self,
        store: CommandStore,
        units: frozenset[str],
        policy: LifecyclePolicy,
        senders: SenderKeys,
        guarantee: ProcessingGuarantee = ProcessingGuarantee.at_least_once,
        clocks: Clocks | None = None,
    ) -> None:
        self._store = store
        #: The calendar and acceptance limits decisions count on (default: provisional calendar).
        self._clocks = clocks or Clocks()
        self._units = units
        self._policy = policy
        self._senders = senders
        self._exactly_once = guarantee is ProcessingGuarantee.exactly_once

    def handle(self, messages: Sequence[InboundMessage], now: datetime) -> CommandResult:
        """A batch from Kafka: undecodable commands become dead letters, commands whose
        signature does not let them act are refused (unrecorded, so their command_id stays
        free), the rest are executed; all in one transaction."""
        result = CommandResult()
        commands: list[WorkOrderCommand | Refused] = []
        originals: list[KeptOriginal] = []
        positions: list[str | None] = []
        for message in messages:
            decoded = decode_command(message.value)
            if isinstance(decoded, Rejection):
                lettered = _dead_letter(message, decoded, now)
                result.dead_letters.append(lettered.letter)
                originals += [lettered.original] if lettered.original is not None else []
                result.rejected[decoded.reason.value] += 1
                continue
            refusal = self._signature_refusal(message, decoded)
            commands.append(decoded if refusal is None else Refused(decoded, refusal))
            positions.append(position(message) if self._exactly_once else None)
        outcomes, result.announcements = self._execute(
            commands, now, positions, originals, result.dead_letters
        )
        for outcome in outcomes:
            result.outcomes.append(outcome)
            if outcome.outcome is Outcome.applied:
                result.applied[outcome.command.action.value] += 1
            elif outcome.refusal is not None:
                result.rejected[outcome.refusal.code] += 1
        return result

    def _signature_refusal(self, message: InboundMessage, command: WorkOrderCommand) -> Refusal | None:
        """Why the command's signature does not let it act (over the JSON object as sent:
        ``decode_command`` accepted the value, so it is one); None when it may."""
        code = check(json.loads(message.value or b"{}"), message.headers, self._senders, command.actor.unit)
        return None if code is None else Refusal(code, _SIGNATURE_REASONS[code])

    def unprocessable(self, message: InboundMessage, error: str, now: datetime) -> CommandResult:
        """A command whose handling failed alone, permanently (``error``: the error's class
        name): dead-lettered, and refused where the refusal can be recorded, so whoever sent
        it (the API waits for a verdict) learns it and a re-delivery changes nothing."""
        lettered = _dead_letter(message, unprocessable_rejection(error), now)
        if lettered.original is not None:  # kept before the letter is published
            self._store.keep_originals([lettered.original])
        self._store.log_dead_letters([lettered.letter])
        result = CommandResult(dead_letters=[lettered.letter])
        result.rejected[RefusalCode.unprocessable] += 1
        command = decode_command(message.value)
        if isinstance(command, Rejection) or self._signature_refusal(message, command) is not None:
            return result  # a forged command does not use up its command_id either
        refusal = Refusal(RefusalCode.unprocessable, f"the command could not be handled ({error})")
        at = position(message) if self._exactly_once else None

        def refuse() -> list[Announcement]:
            with self._store.command_batch(now) as batch:
                # Exactly once, a command whose announcements are stored was handled: what
                # failed was publishing them, and would fail again. The dead letter says so.
                if at is not None and batch.outbox_at([at]):
                    return []
                batch.position = at
                if not batch.processed([command.command_id]):
                    batch.record(command.command_id, command.work_order_id, refusal.code, refusal.reason)
                    _announce(batch, _refusal_event(command, refusal, None, batch.now))
                return batch.written

        try:
            result.announcements = once_more_if_raced(refuse)
        except Exception as exc:
            if transient(exc) is not None:
                raise  # waited out by the caller
            # The refusal cannot be stored either (whatever failed fails again): the dead
            # letter is the record.
            log.error("command_refusal_not_recorded", command_id=command.command_id, error=error_name(exc))
        return result

    def outbox(self) -> list[Any]:
        """Announcements written but not yet published (id, topic, key, payload)."""
        return list(self._store.unpublished_outbox())

    def published(self, ids: Sequence[int], now: datetime) -> None:
        self._store.mark_outbox_published(ids, now)

    def execute(self, commands: Sequence[WorkOrderCommand], now: datetime) -> list[CommandOutcome]:
        """Decide and record each command, in order, in one transaction."""
        return self._execute(commands, now, [None] * len(commands))[0]

    def _execute(
        self,
        commands: Sequence[WorkOrderCommand | Refused],
        now: datetime,
        positions: Sequence[str | None],
        originals: Sequence[KeptOriginal] = (),
        letters: Sequence[DeadLetter] = (),
    ) -> tuple[list[CommandOutcome], list[Announcement]]:
        """The outcomes, and (exactly once) the announcements to publish: those of the commands
        handled, and those stored before from the positions of commands that came again.
        ``originals``: of the batch's redacted dead letters, kept in its transaction, where
        ``letters`` (all of them) are counted."""

        return once_more_if_raced(lambda: self._execute_once(commands, now, positions, originals, letters))

    def _execute_once(
        self,
        commands: Sequence[WorkOrderCommand | Refused],
        now: datetime,
        positions: Sequence[str | None],
        originals: Sequence[KeptOriginal],
        letters: Sequence[DeadLetter],
    ) -> tuple[list[CommandOutcome], list[Announcement]]:
        """One attempt at the batch, in one transaction."""
        with self._store.command_batch(now) as batch:
            batch.keep_originals(originals)
            batch.log_dead_letters(letters)
            batch.lock_orders([c.work_order_id for c in commands])
            seen = batch.processed([c.command_id for c in commands if isinstance(c, WorkOrderCommand)])
            stored = batch.outbox_at([at for at in positions if at is not None])
            outcomes = []
            for command, at in zip(commands, positions, strict=True):
                if at in stored:  # came again: its transaction never committed to Kafka
                    batch.written += stored.pop(at)
                    outcomes.append(CommandOutcome(_command_of(command), Outcome.duplicate, None))
                    continue
                batch.position = at
                if isinstance(command, Refused):
                    outcomes.append(_refuse_signature(batch, command))
                    continue
                if command.command_id in seen:
                    outcomes.append(CommandOutcome(command, Outcome.duplicate, None))
                    continue
                seen.add(command.command_id)
                outcomes.append(self._execute_one(batch, command))
            return outcomes, batch.written

    def _execute_one(self, batch: CommandBatch, command: WorkOrderCommand) -> CommandOutcome:
        row = batch.order_row(command.work_order_id)
        actor = command.actor.unit
        if row is None:
            refusal = Refusal(RefusalCode.unknown_order, f"no work order {command.work_order_id}")
            batch.record(command.command_id, command.work_order_id, refusal.code, refusal.reason)
            event = _refusal_event(command, refusal, None, batch.now)
            _announce(batch, event)
            return CommandOutcome(command, Outcome.rejected, event, refusal)
        state = _state(row, self._units)
        decision = decide(state, command, self._policy, self._clocks)
        if isinstance(decision, Refusal):
            detail = {"command_id": command.command_id, "action": command.action.value, "code": decision.code}
            batch.refused(state.id, actor, {**detail, "reason": decision.reason})
            batch.record(command.command_id, state.id, decision.code, decision.reason)
            order = batch.order(state.id)
            event = _refusal_event(command, decision, order, batch.now)
            _announce(batch, event)
            return CommandOutcome(command, Outcome.rejected, event, decision, order)
        detail = _audit(command, decision)
        batch.apply(state.id, state.status, decision.changes, decision.event, actor, detail)
        batch.record(command.command_id, state.id, Outcome.applied, decision.event)
        order = batch.order(state.id)
        if decision.raise_to_leadership:
            # 提级督办 with the command that caused it, not at the next escalation check.
            batch.escalate_once(order.id, EscalationLevel.rework_escalated, order.unit, order.due_at)
        event = LifecycleEvent(
            work_order_id=order.id,
            event=decision.event,
            status=order.status,
            unit=order.unit,
            due_at=order.due_at,
            at=command.at,
            command_id=command.command_id,
            actor_unit=actor,
            detail={k: v for k, v in decision.detail.items() if isinstance(v, str | int | float | bool)},
        )
        _announce(batch, event, order if decision.redispatch else None)
        return CommandOutcome(command, Outcome.applied, event, None, order, decision.redispatch)


def position(message: InboundMessage) -> str:
    """Where a command was read: ``topic/partition/offset``."""
    return f"{message.topic}/{message.partition}/{message.offset}"


def _command_of(command: WorkOrderCommand | Refused) -> WorkOrderCommand:
    return command.command if isinstance(command, Refused) else command


@dataclass(frozen=True, slots=True)
class Refused:
    """A command its signature does not let act: audited, never applied nor recorded."""

    command: WorkOrderCommand
    refusal: Refusal

    @property
    def work_order_id(self) -> str:
        return self.command.work_order_id


_SIGNATURE_REASONS = {
    SignatureRefusal.unsigned: "the command is not signed",
    SignatureRefusal.unknown_key: "the command is signed by a key that is not listed",
    SignatureRefusal.retired_key: "the command is signed by a retired key",
    SignatureRefusal.bad_signature: "the signature does not match the command",
    SignatureRefusal.beyond_rights: "the signing key may not act as this unit",
}


def _refuse_signature(batch: CommandBatch, refused: Refused) -> CommandOutcome:
    """Audited in the order's history (when it exists) and on the lifecycle topic, not
    recorded as processed: a forged command cannot use up a legitimate command_id."""
    command, refusal = refused.command, refused.refusal
    order: WorkOrder | None = None
    if batch.order_row(command.work_order_id) is not None:
        detail = {"command_id": command.command_id, "action": command.action.value, "code": refusal.code}
        batch.refused(command.work_order_id, command.actor.unit, {**detail, "reason": refusal.reason})
        order = batch.order(command.work_order_id)
    event = _refusal_event(command, refusal, order, batch.now)
    _announce(batch, event)
    return CommandOutcome(command, Outcome.rejected, event, refusal, order)


def _announce(batch: CommandBatch, event: LifecycleEvent, redispatched: WorkOrder | None = None) -> None:
    """Into the outbox, in the command's transaction: published after it commits, even if the
    worker dies in between (the next worker publishes what is left)."""
    batch.to_outbox(OutboxTopic.lifecycle, event.work_order_id, event.model_dump_json(by_alias=True))
    if redispatched is not None:
        message = redispatched.dispatch_message()
        batch.to_outbox(OutboxTopic.dispatched, redispatched.unit, message.model_dump_json(by_alias=True))


def _state(row: Any, units: frozenset[str]) -> OrderState:
    return OrderState(
        id=row["id"],
        kind=SignalKind(row["kind"]),
        priority=Priority(row["priority"]),
        status=WorkOrderStatus(row["status"]),
        unit=row["unit"],
        due_at=row["due_at"],
        known_units=units,
        disposition=row["disposition"],
        accepted_at=row["accepted_at"],
        first_feedback_at=row["first_feedback_at"],
        returned_at=row["returned_at"],
        returned_seconds=row["returned_seconds"],
        reopen_count=row["reopen_count"],
        deadline_provisional=row["deadline_provisional"],
        working_days=row["working_days"],
        accept_due_at=row["accept_due_at"],
        rework_count=row["rework_count"],
        extension_requests=row["extension_requests"],
        pending_extension_days=row["pending_extension_days"],
        pending_extension_hours=row["pending_extension_hours"],
        extension_requested_at=row["extension_requested_at"],
        extended_working_days=row["extended_working_days"],
        extended_hours=row["extended_hours"],
    )


def _audit(command: WorkOrderCommand, transition: Transition) -> dict[str, Any]:
    detail: dict[str, Any] = {
        "command_id": command.command_id,
        "action": command.action.value,
        "at": command.at.isoformat(),
        "officer_ids": sorted(set(command.actor.officer_ids)),
        **transition.detail,
    }
    if command.actor.officer_id:
        detail["actor_officer"] = command.actor.officer_id
    if command.note:
        detail["note"] = command.note
    return detail


def _dead_letter(message: InboundMessage, rejection: Rejection, now: datetime) -> Lettered:
    """A command's dead letter (masked if what was put on the commands topic is a complaint)."""
    return dead_letter(message, rejection, now, COMMAND_CONTRACT)


def _refusal_event(
    command: WorkOrderCommand, refusal: Refusal, order: WorkOrder | None, now: datetime
) -> LifecycleEvent:
    return LifecycleEvent(
        work_order_id=command.work_order_id,
        event=LifecycleEventName.command_rejected,
        status=order.status if order else None,
        unit=order.unit if order else None,
        due_at=order.due_at if order else None,
        at=now,
        command_id=command.command_id,
        actor_unit=command.actor.unit,
        detail={"action": command.action.value, "code": refusal.code, "reason": refusal.reason},
    )
