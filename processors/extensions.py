"""延期申请: a unit asks for more time before its order is due; the command center approves
(all it asked, or less) or rejects. An approval moves due_at on the official calendar, so
the reminder, escalations and cards, which fire once per deadline, start afresh.

One request may be pending at a time. The policy limits how many requests an order may
have and how much time may be granted in all (working days and hours apart). Pure.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from workorder_pipeline.processors.order_state import Clocks, OrderState, Refusal, Transition
from workorder_pipeline.schemas.commands import (
    ExtensionAmount,
    LifecycleEventName,
    RefusalCode,
    WorkOrderCommand,
)
from workorder_pipeline.schemas.policy import LifecyclePolicy
from workorder_pipeline.schemas.times import for_people

E = LifecycleEventName
R = RefusalCode
#: The columns of the pending request, cleared when it is decided or the order leaves its
#: unit or closes.
NO_PENDING: dict[str, Any] = {
    "pending_extension_days": None,
    "pending_extension_hours": None,
    "extension_requested_at": None,
}


def describe(amount: ExtensionAmount) -> str:
    return f"{amount.working_days} working days" if amount.working_days else f"{amount.hours:g} h"


def _amount_detail(prefix: str, amount: ExtensionAmount) -> dict[str, Any]:
    if amount.working_days is not None:
        return {f"{prefix}_working_days": amount.working_days}
    return {f"{prefix}_hours": amount.hours}


def request_extension(
    order: OrderState, command: WorkOrderCommand, policy: LifecyclePolicy
) -> Transition | Refusal:
    asked, limits = command.extension, policy.extensions
    if asked is None:
        return Refusal(R.missing_field, "an extension request needs extension: working_days or hours")
    if not command.note:
        return Refusal(R.missing_field, "an extension request needs the reason in note")
    if command.at >= order.due_at:
        return Refusal(R.too_late, f"an extension is asked before the deadline {for_people(order.due_at)}")
    if order.pending_extension is not None:
        return Refusal(R.extension_pending, "an extension request is already waiting for the command center")
    if order.extension_requests >= limits.max_requests:
        return Refusal(R.over_limit, f"at most {limits.max_requests} extension requests per order")
    if (
        asked.working_days is not None
        and order.extended_working_days + asked.working_days > limits.max_working_days
    ):
        days_left = limits.max_working_days - order.extended_working_days
        return Refusal(
            R.over_limit, f"at most {limits.max_working_days} working days in all ({days_left} left)"
        )
    if asked.hours is not None and order.extended_hours + asked.hours > limits.max_hours:
        hours_left = limits.max_hours - order.extended_hours
        return Refusal(R.over_limit, f"at most {limits.max_hours:g} h in all ({hours_left:g} left)")
    changes = {
        "status": order.status,
        "pending_extension_days": asked.working_days,
        "pending_extension_hours": asked.hours,
        "extension_requested_at": command.at,
        "extension_requests": order.extension_requests + 1,
    }
    return Transition(E.extension_requested, changes, _amount_detail("asked", asked))


def approve_extension(
    order: OrderState, command: WorkOrderCommand, _: LifecyclePolicy, clocks: Clocks
) -> Transition | Refusal:
    asked = order.pending_extension
    if asked is None:
        return Refusal(R.no_extension_pending, "no extension request is waiting")
    granted = command.extension or asked
    same_unit = (granted.working_days is None) == (asked.working_days is None)
    if (
        not same_unit
        or (granted.working_days or 0) > (asked.working_days or 0)
        or (granted.hours or 0) > (asked.hours or 0)
    ):
        return Refusal(R.exceeds_request, f"the unit asked {describe(asked)}: grant that or less")
    changes: dict[str, Any] = {"status": order.status, **NO_PENDING}
    if granted.working_days is not None:
        moved = clocks.calendar.shift_working_days(order.due_at, granted.working_days)
        changes |= {
            "due_at": moved.due_at,
            "deadline_provisional": order.deadline_provisional or moved.provisional,
            "extended_working_days": order.extended_working_days + granted.working_days,
        }
        if order.working_days is not None:  # a provisional deadline is recounted with it
            changes["working_days"] = order.working_days + granted.working_days
    else:
        assert granted.hours is not None
        changes |= {
            "due_at": order.due_at + timedelta(hours=granted.hours),
            "extended_hours": order.extended_hours + granted.hours,
        }
    detail = {
        **_amount_detail("asked", asked),
        **_amount_detail("granted", granted),
        "from": order.due_at.isoformat(),
        "to": changes["due_at"].isoformat(),
    }
    return Transition(E.extension_approved, changes, detail, redispatch=True)


def reject_extension(
    order: OrderState, command: WorkOrderCommand, _: LifecyclePolicy
) -> Transition | Refusal:
    asked = order.pending_extension
    if asked is None:
        return Refusal(R.no_extension_pending, "no extension request is waiting")
    if not command.note:
        return Refusal(R.missing_field, "rejecting an extension needs the reason in note")
    return Transition(
        E.extension_rejected, {"status": order.status, **NO_PENDING}, _amount_detail("asked", asked)
    )


def pending_cleared(order: OrderState) -> dict[str, Any]:
    """Changes that drop a pending request when the order leaves the unit that asked, or closes."""
    return dict(NO_PENDING) if order.pending_extension is not None else {}
