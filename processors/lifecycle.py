"""The work-order state machine: ``decide`` what a command does to an order, or why it may not.

    registered -> dispatched -> accepted -> in_progress -> feedback_submitted -> closed
                      |  ^          |            |   ^             |              |
                      |  +-reassign-+-- return --+   +-- rework ---+   reopen ----+
                      +--------> returned (command center re-routes) <-------+

Who may do what is data (``RULES``): the order's unit acts in the field and asks for
extensions (processors/extensions.py); the command center reassigns, extends, decides
extension requests and sends feedback back for rework. Every send-back (rework, an
unsatisfied complainant, a reopening) is counted, raised to leadership at the policy's
count, and the order closes only after new feedback. Every other command in every state
is refused with a reason. Pure: time comes in with the command, the calendar with Clocks.

Clocks: accepted_at (time to accept), first_feedback_at (time to first feedback),
closed_at (time to close). The time an order spends returned, waiting for the command
center to re-route it, is not charged: on reassignment its due_at moves later by that
time, and returned_seconds keeps the total.
"""

from __future__ import annotations

__all__ = [
    "RULES",
    "Clocks",
    "LifecyclePolicy",
    "OrderState",
    "Refusal",
    "Transition",
    "decide",
    "may_act",
    "offered",
]

from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any

from workorder_pipeline.processors import extensions
from workorder_pipeline.processors.clocks import accept_due_at
from workorder_pipeline.processors.order_state import Clocks, OrderState, Refusal, Transition
from workorder_pipeline.schemas.commands import (
    CallbackResult,
    CommandAction,
    LifecycleEventName,
    RefusalCode,
    WorkOrderCommand,
)
from workorder_pipeline.schemas.policy import LifecyclePolicy
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.times import for_people
from workorder_pipeline.schemas.workorder import COMMAND_CENTER, WorkOrderStatus

S = WorkOrderStatus
E = LifecycleEventName
R = RefusalCode
OPEN = frozenset({S.registered, S.dispatched, S.accepted, S.in_progress, S.feedback_submitted, S.returned})


class Who(Enum):
    UNIT = "the order's unit"
    COMMAND_CENTER = "the command center"
    UNIT_OR_COMMAND_CENTER = "the order's unit or the command center"


@dataclass(frozen=True, slots=True)
class Rule:
    states: frozenset[WorkOrderStatus]
    who: Who


RULES: dict[CommandAction, Rule] = {
    CommandAction.accept: Rule(frozenset({S.dispatched}), Who.UNIT),
    CommandAction.start: Rule(frozenset({S.accepted}), Who.UNIT),
    CommandAction.feedback: Rule(frozenset({S.in_progress}), Who.UNIT),
    CommandAction.close: Rule(frozenset({S.in_progress, S.feedback_submitted}), Who.UNIT_OR_COMMAND_CENTER),
    CommandAction.return_: Rule(frozenset({S.dispatched, S.accepted, S.in_progress}), Who.UNIT),
    CommandAction.reopen: Rule(frozenset({S.feedback_submitted, S.closed}), Who.COMMAND_CENTER),
    CommandAction.reassign: Rule(OPEN - {S.feedback_submitted}, Who.COMMAND_CENTER),
    CommandAction.extend: Rule(OPEN, Who.COMMAND_CENTER),
    CommandAction.request_extension: Rule(frozenset({S.accepted, S.in_progress}), Who.UNIT),
    CommandAction.approve_extension: Rule(
        frozenset({S.accepted, S.in_progress, S.feedback_submitted}), Who.COMMAND_CENTER
    ),
    CommandAction.reject_extension: Rule(
        frozenset({S.accepted, S.in_progress, S.feedback_submitted}), Who.COMMAND_CENTER
    ),
}


def may_act(action: CommandAction, actor_unit: str, order_unit: str) -> bool:
    """Whether ``actor_unit`` may send ``action`` about an order of ``order_unit`` (whatever
    its state): the rights table the worker decides by and the console offers actions by."""
    return {
        Who.UNIT: actor_unit == order_unit,
        Who.COMMAND_CENTER: actor_unit == COMMAND_CENTER,
        Who.UNIT_OR_COMMAND_CENTER: actor_unit in (order_unit, COMMAND_CENTER),
    }[RULES[action].who]


def offered(action: CommandAction, actor_unit: str, order_unit: str, status: WorkOrderStatus) -> bool:
    """Whether the action may be sent now: by this actor and in the order's state."""
    return may_act(action, actor_unit, order_unit) and status in RULES[action].states


def decide(
    order: OrderState, command: WorkOrderCommand, policy: LifecyclePolicy, clocks: Clocks | None = None
) -> Transition | Refusal:
    rule = RULES[command.action]
    if not may_act(command.action, command.actor.unit, order.unit):
        return Refusal(
            R.forbidden, f"only {rule.who.value} may {command.action.value} this order ({order.unit})"
        )
    if order.status not in rule.states:
        states = ", ".join(sorted(s.value for s in rule.states))
        return Refusal(
            R.invalid_state,
            f"cannot {command.action.value} an order that is {order.status.value} (only when {states})",
        )
    clocks = clocks or Clocks()
    if command.action is CommandAction.approve_extension:
        return extensions.approve_extension(order, command, policy, clocks)
    if command.action is CommandAction.reassign:
        return _reassign(order, command, clocks)
    return _HANDLERS[command.action](order, command, policy)


def _accept(order: OrderState, command: WorkOrderCommand, _: LifecyclePolicy) -> Transition | Refusal:
    changes: dict[str, Any] = {"status": S.accepted}
    if order.accepted_at is None:
        changes["accepted_at"] = command.at
    return Transition(E.accepted, changes)


def _start(order: OrderState, command: WorkOrderCommand, _: LifecyclePolicy) -> Transition | Refusal:
    return Transition(E.started, {"status": S.in_progress})


def _feedback(order: OrderState, command: WorkOrderCommand, policy: LifecyclePolicy) -> Transition | Refusal:
    if command.disposition is None:
        return Refusal(R.missing_field, "feedback needs a disposition")
    if (refusal := _officers(command, policy)) is not None:
        return refusal
    changes: dict[str, Any] = {"status": S.feedback_submitted, "disposition": command.disposition.value}
    if order.first_feedback_at is None:
        changes["first_feedback_at"] = command.at
    return Transition(E.feedback_submitted, changes, {"disposition": command.disposition.value})


def _close(order: OrderState, command: WorkOrderCommand, policy: LifecyclePolicy) -> Transition | Refusal:
    if order.status is S.in_progress and order.sent_back:
        # Sent back (reworked, reopened, unsatisfied): what was done again is reported first.
        return Refusal(R.needs_new_feedback, "a reopened or reworked order closes only after new feedback")
    disposition = command.disposition.value if command.disposition else order.disposition
    if disposition is None:
        return Refusal(R.missing_field, "closing needs a disposition (in this command or in the feedback)")
    if (refusal := _officers(command, policy)) is not None:
        return refusal
    detail: dict[str, Any] = {"disposition": disposition}
    if order.kind is SignalKind.complaint:
        callback = command.callback
        if callback is None:
            return Refusal(R.missing_field, "closing a complaint needs the callback to the complainant")
        detail["callback"] = callback.result.value
        if callback.result is CallbackResult.unsatisfied:
            changes = {
                "status": S.in_progress,
                "reopen_count": order.reopen_count + 1,
                "disposition": disposition,
            }
            why = {**detail, "why": "the complainant is not satisfied"}
            return _sent_back(order, E.reopened, changes, why, policy)
        if (
            callback.result is CallbackResult.unreachable
            and callback.attempts < policy.unreachable_after_attempts
        ):
            return Refusal(
                R.callback_incomplete,
                f"complainant unreachable after {callback.attempts} attempts; "
                f"{policy.unreachable_after_attempts} are needed before closing",
            )
    on_time = command.at <= order.due_at
    changes = {
        "status": S.closed,
        "closed_at": command.at,
        "closed_on_time": on_time,
        "disposition": disposition,
        # A closed order has no deadline left to move: a request still waiting is dropped.
        **extensions.pending_cleared(order),
    }
    return Transition(E.closed, changes, {**detail, "on_time": on_time})


def _sent_back(
    order: OrderState,
    event: LifecycleEventName,
    changes: dict[str, Any],
    detail: dict[str, Any],
    policy: LifecyclePolicy,
) -> Transition:
    """Back to the unit to do it again (重办): counted; at the policy's count, to leadership."""
    reworks = order.rework_count + 1
    raised = reworks >= policy.reworks_to_leadership
    detail = {**detail, "rework_count": reworks, **({"raised_to_leadership": True} if raised else {})}
    return Transition(event, {**changes, "rework_count": reworks}, detail, raise_to_leadership=raised)


def _return(order: OrderState, command: WorkOrderCommand, policy: LifecyclePolicy) -> Transition | Refusal:
    allowed = ", ".join(sorted(policy.return_reasons))
    if command.reason is None:
        return Refusal(R.missing_field, f"a return needs a reason: {allowed}")
    if command.reason not in policy.return_reasons:
        return Refusal(
            R.reason_not_allowed, f"return reason {command.reason.value} is not in the policy: {allowed}"
        )
    changes = {"status": S.returned, "unit": COMMAND_CENTER, "returned_at": command.at}
    changes |= extensions.pending_cleared(order)
    return Transition(E.returned, changes, {"reason": command.reason.value, "returned_by": order.unit})


def _reopen(order: OrderState, command: WorkOrderCommand, policy: LifecyclePolicy) -> Transition | Refusal:
    detail = {"note_given": command.note is not None}
    if order.status is S.feedback_submitted:
        return _sent_back(order, E.rework_requested, {"status": S.in_progress}, detail, policy)
    changes = {
        "status": S.in_progress,
        "reopen_count": order.reopen_count + 1,
        "closed_at": None,
        "closed_on_time": None,
    }
    return _sent_back(order, E.reopened, changes, detail, policy)


def _reassign(order: OrderState, command: WorkOrderCommand, clocks: Clocks) -> Transition | Refusal:
    target = command.to_unit
    if target is None:
        return Refusal(R.missing_field, "reassign needs to_unit")
    if target not in order.known_units:
        return Refusal(R.unknown_unit, f"no unit {target!r} in units.yaml")
    if target == order.unit and order.status is not S.returned:
        return Refusal(R.no_change, f"the order is already {target}'s")
    changes: dict[str, Any] = {"status": S.dispatched, "unit": target, **extensions.pending_cleared(order)}
    detail: dict[str, Any] = {"from": order.unit, "to": target}
    if clocks.acceptance is not None:  # the new unit's acceptance clock starts now
        accept_by = accept_due_at(
            command.at, order.kind, order.priority, clocks.acceptance, clocks.calendar, clocks.cutoff
        )
        changes["accept_due_at"] = accept_by
        detail["accept_due_at"] = accept_by.isoformat()
    if order.returned_at is not None:
        # The clock stopped while the order waited for re-routing: not charged to anyone.
        # Clocks of squads and command center differ: a reassign stamped before the return
        # pauses nothing, and never moves the deadline earlier.
        paused = max(timedelta(0), command.at - order.returned_at)
        changes |= {
            "returned_at": None,
            "returned_seconds": order.returned_seconds + paused.total_seconds(),
            "due_at": order.due_at + paused,
        }
        detail["paused_seconds"] = round(paused.total_seconds())
    return Transition(E.reassigned, changes, detail, redispatch=True)


def _extend(order: OrderState, command: WorkOrderCommand, _: LifecyclePolicy) -> Transition | Refusal:
    if command.new_due_at is None:
        return Refusal(R.missing_field, "extend needs new_due_at")
    if not command.note:
        return Refusal(R.missing_field, "extend needs the reason in note")
    if command.new_due_at <= order.due_at:
        return Refusal(R.not_later, f"new_due_at must be after the current due_at {for_people(order.due_at)}")
    changes = {"due_at": command.new_due_at, "deadline_provisional": False, "status": order.status}
    detail = {"from": order.due_at.isoformat(), "to": command.new_due_at.isoformat()}
    return Transition(E.extended, changes, detail, redispatch=True)


def _officers(command: WorkOrderCommand, policy: LifecyclePolicy) -> Refusal | None:
    officers = set(command.actor.officer_ids)
    if len(officers) < policy.min_officers:
        return Refusal(
            R.too_few_officers,
            f"{command.action.value} needs at least {policy.min_officers} distinct officer ids, "
            f"got {len(officers)}",
        )
    return None


_HANDLERS = {
    CommandAction.accept: _accept,
    CommandAction.start: _start,
    CommandAction.feedback: _feedback,
    CommandAction.close: _close,
    CommandAction.return_: _return,
    CommandAction.reopen: _reopen,
    CommandAction.extend: _extend,
    CommandAction.request_extension: extensions.request_extension,
    CommandAction.reject_extension: extensions.reject_extension,
}
