"""延期申请: a unit asks for more time before its deadline, within the policy's limits; the
command center grants it (or less) on the official calendar, or refuses it."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_lifecycle import apply, command, order, refusal, transition
from workorder_pipeline.processors.calendar import WorkCalendar, YearSchedule
from workorder_pipeline.processors.cards import due_cards
from workorder_pipeline.processors.escalation import due_escalations
from workorder_pipeline.processors.lifecycle import Clocks, LifecyclePolicy, OrderState, decide
from workorder_pipeline.schemas.commands import CommandAction, EscalationLevel
from workorder_pipeline.schemas.policy import Deadlines, TimeLimit
from workorder_pipeline.schemas.times import CHINA_STANDARD_TIME as CST
from workorder_pipeline.schemas.workflow import DEFAULT_CARDS, ExtensionLimits
from workorder_pipeline.schemas.workorder import COMMAND_CENTER, Priority, WorkOrderStatus

S = WorkOrderStatus
A = CommandAction
#: National Day 2026 (made-up notice): 1-7 October off, Saturday 10 October worked.
CALENDAR = WorkCalendar(
    {
        2026: YearSchedule(
            2026, frozenset(date(2026, 10, d) for d in range(1, 8)), frozenset({date(2026, 10, 10)})
        )
    }
)
CLOCKS = Clocks(CALENDAR)
#: Due at the end of Wednesday 30 September, the last working day before the holiday.
DUE = datetime(2026, 10, 1, tzinfo=CST)
BEFORE = DUE - timedelta(days=1)
POLICY = LifecyclePolicy(extensions=ExtensionLimits(max_requests=2, max_working_days=7, max_hours=48))


def unit_order(status: WorkOrderStatus = S.in_progress, **fields: Any) -> OrderState:
    return order(status, due_at=DUE, **fields)


def ask(amount: dict[str, Any], *, at: datetime = BEFORE, note: str | None = "等待车主到案") -> Any:
    return command(A.request_extension, at=at, note=note, extension=amount)


def decide_(state: OrderState, cmd: Any) -> Any:
    return decide(state, cmd, POLICY, CLOCKS)


# ---------------------------------------------------------------- asking


def test_a_request_before_the_deadline_waits_for_the_command_center() -> None:
    done = transition(decide_(unit_order(), ask({"working_days": 3})))
    assert done.event == "extension_requested"
    assert done.status is S.in_progress
    assert done.changes["pending_extension_days"] == 3
    assert done.changes["extension_requests"] == 1
    assert "due_at" not in done.changes


@pytest.mark.parametrize(
    ("state", "cmd", "code"),
    [
        pytest.param(unit_order(), ask({"working_days": 1}, at=DUE), "too_late", id="at-the-deadline"),
        pytest.param(
            unit_order(), ask({"working_days": 1}, at=DUE + timedelta(hours=1)), "too_late", id="after-it"
        ),
        pytest.param(unit_order(), ask({"working_days": 1}, note=None), "missing_field", id="no-reason"),
        pytest.param(
            unit_order(), command(A.request_extension, at=BEFORE, note="x"), "missing_field", id="no-amount"
        ),
        pytest.param(
            unit_order(pending_extension_days=2), ask({"hours": 4}), "extension_pending", id="one-pending"
        ),
        pytest.param(unit_order(extension_requests=2), ask({"working_days": 1}), "over_limit", id="too-many"),
        pytest.param(
            unit_order(extended_working_days=5), ask({"working_days": 3}), "over_limit", id="too-much-days"
        ),
        pytest.param(unit_order(extended_hours=40), ask({"hours": 9}), "over_limit", id="too-much-hours"),
        pytest.param(
            unit_order(S.feedback_submitted), ask({"working_days": 1}), "invalid_state", id="after-feedback"
        ),
        pytest.param(unit_order(S.dispatched), ask({"working_days": 1}), "invalid_state", id="not-accepted"),
    ],
)
def test_requests_outside_the_rules_are_refused(state: OrderState, cmd: Any, code: str) -> None:
    assert refusal(decide_(state, cmd)).code == code


def test_the_limit_counts_what_was_granted_before() -> None:
    state = unit_order(extended_working_days=5, extension_requests=1)
    assert transition(decide_(state, ask({"working_days": 2}))).changes["pending_extension_days"] == 2


def test_only_the_orders_unit_may_ask() -> None:
    cmd = command(A.request_extension, "squad-2", at=BEFORE, note="x", extension={"hours": 2})
    assert refusal(decide_(unit_order(), cmd)).code == "forbidden"


# ---------------------------------------------------------------- deciding


def approve(**fields: Any) -> Any:
    return command(A.approve_extension, COMMAND_CENTER, at=DUE + timedelta(hours=2), **fields)


def test_approval_moves_due_at_over_the_holiday_and_redispatches() -> None:
    state = unit_order(pending_extension_days=2, extension_requests=1, working_days=3)
    done = transition(decide_(state, approve()))
    assert done.event == "extension_approved"
    # Two working days after Wednesday 30 September: Thursday 8 and Friday 9 October.
    assert done.changes["due_at"] == datetime(2026, 10, 10, tzinfo=CST)
    assert done.changes["working_days"] == 5
    assert done.changes["extended_working_days"] == 2
    assert done.changes["pending_extension_days"] is None
    assert done.redispatch
    assert done.detail["granted_working_days"] == 2


def test_the_command_center_may_grant_less() -> None:
    state = unit_order(pending_extension_days=3, extension_requests=1)
    done = transition(decide_(state, approve(extension={"working_days": 1})))
    assert done.changes["due_at"] == datetime(2026, 10, 9, tzinfo=CST)
    assert (done.detail["asked_working_days"], done.detail["granted_working_days"]) == (3, 1)


def test_hours_are_hours_of_the_clock() -> None:
    done = transition(decide_(unit_order(pending_extension_hours=6.0), approve()))
    assert done.changes["due_at"] == DUE + timedelta(hours=6)
    assert done.changes["extended_hours"] == 6


@pytest.mark.parametrize(
    "granted",
    [{"working_days": 4}, {"hours": 8}],
    ids=["more-than-asked", "other-unit"],
)
def test_granting_more_or_in_another_unit_is_refused(granted: dict[str, Any]) -> None:
    state = unit_order(pending_extension_days=3)
    assert refusal(decide_(state, approve(extension=granted))).code == "exceeds_request"


@pytest.mark.parametrize("action", [A.approve_extension, A.reject_extension], ids=str)
def test_deciding_with_nothing_pending_is_refused(action: CommandAction) -> None:
    cmd = command(action, COMMAND_CENTER, note="no")
    assert refusal(decide_(unit_order(), cmd)).code == "no_extension_pending"


def test_a_unit_cannot_approve_its_own_request() -> None:
    assert (
        refusal(decide_(unit_order(pending_extension_days=1), command(A.approve_extension))).code
        == "forbidden"
    )


def test_rejection_needs_a_reason_and_keeps_the_deadline() -> None:
    state = unit_order(pending_extension_days=2, extension_requests=1)
    assert refusal(decide_(state, command(A.reject_extension, COMMAND_CENTER))).code == "missing_field"
    done = transition(decide_(state, command(A.reject_extension, COMMAND_CENTER, note="证据已足")))
    assert done.event == "extension_rejected"
    assert "due_at" not in done.changes
    assert done.changes["pending_extension_days"] is None


@pytest.mark.parametrize(
    ("cmd", "status"),
    [
        (command(A.return_, reason="not_our_jurisdiction"), S.returned),
        (command(A.reassign, COMMAND_CENTER, to_unit="squad-2"), S.dispatched),
    ],
    ids=["return", "reassign"],
)
def test_a_pending_request_lapses_when_the_order_leaves_the_unit(cmd: Any, status: WorkOrderStatus) -> None:
    done = transition(decide_(unit_order(pending_extension_days=2), cmd))
    assert done.status is status
    assert done.changes["pending_extension_days"] is None


def test_a_rejected_request_still_counts_against_the_limit() -> None:
    state = unit_order()
    for cmd in [ask({"working_days": 1}), command(A.reject_extension, COMMAND_CENTER, note="no")] * 2:
        state = apply(state, decide_(state, cmd))
    assert state.extension_requests == 2
    assert refusal(decide_(state, ask({"working_days": 1}))).code == "over_limit"


# ---------------------------------------------------------------- escalations start afresh


def test_an_approved_extension_restarts_escalations_and_cards() -> None:
    created = datetime(2026, 9, 25, tzinfo=CST)
    deadlines = Deadlines(default={p: TimeLimit(working_days=3) for p in Priority})
    state = unit_order(pending_extension_days=2)
    new_due = transition(decide_(state, approve())).changes["due_at"]
    now = DUE + timedelta(hours=2)  # the old deadline has passed
    old = due_escalations(S.in_progress, "squad-1", created, DUE, deadlines, now)
    new = due_escalations(S.in_progress, "squad-1", created, new_due, deadlines, now)
    assert EscalationLevel.overdue in [e.level for e in old]
    assert EscalationLevel.overdue not in [e.level for e in new]
    fired = {(card.level, DUE) for card in due_cards(S.in_progress, DUE, DEFAULT_CARDS, CALENDAR, now)}
    assert [level.value for level, _ in sorted(fired)] == ["yellow"]
    later = due_cards(S.in_progress, new_due, DEFAULT_CARDS, CALENDAR, new_due - timedelta(minutes=1), fired)
    assert [(card.level.value, card.due_at) for card in later] == [("yellow", new_due)]


@given(st.integers(min_value=1, max_value=7), st.integers(min_value=0, max_value=6))
def test_an_approval_never_moves_the_deadline_earlier_nor_beyond_what_was_asked(
    asked: int, less: int
) -> None:
    granted = max(1, asked - less)
    state = unit_order(pending_extension_days=asked)
    done = transition(decide_(state, approve(extension={"working_days": granted})))
    full = CALENDAR.shift_working_days(DUE, asked).due_at
    assert DUE < done.changes["due_at"] <= full
