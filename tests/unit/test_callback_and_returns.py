"""Returns (退单) with the policy's reason codes, and the callback (回访): satisfaction,
rework (重办) counted and raised to leadership, and no closing without new feedback."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_lifecycle import POLICY, T0, apply, callback, command, order, refusal, run, transition
from workorder_pipeline.processors.lifecycle import LifecyclePolicy, OrderState, decide
from workorder_pipeline.schemas.commands import CallbackResult, CommandAction, ReturnReason
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import COMMAND_CENTER, WorkOrderStatus

S = WorkOrderStatus
A = CommandAction

# ---------------------------------------------------------------- returns


@pytest.mark.parametrize("reason", list(ReturnReason), ids=str)
def test_every_reason_of_practice_returns_the_order_under_the_shipped_defaults(reason: ReturnReason) -> None:
    done = transition(decide(order(S.accepted), command(A.return_, reason=reason.value), POLICY))
    assert (done.status, done.detail["reason"]) == (S.returned, reason.value)


def test_a_reason_the_policy_does_not_list_is_refused_and_the_answer_names_those_it_does() -> None:
    policy = LifecyclePolicy(
        return_reasons=frozenset({ReturnReason.not_our_jurisdiction, ReturnReason.duplicate})
    )
    result = refusal(decide(order(S.accepted), command(A.return_, reason="misrouted"), policy))
    assert result.code == "reason_not_allowed"
    assert "duplicate, not_our_jurisdiction" in result.reason


def test_a_return_without_reason_lists_the_allowed_codes() -> None:
    result = refusal(decide(order(S.accepted), command(A.return_), POLICY))
    assert (result.code, "unclear_ownership" in result.reason) == ("missing_field", True)


def test_an_empty_list_of_return_reasons_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match="at least one return reason"):
        LifecyclePolicy(return_reasons=frozenset())


# ---------------------------------------------------------------- callback


def complaint(status: WorkOrderStatus = S.feedback_submitted, **fields: Any) -> OrderState:
    return order(status, kind=SignalKind.complaint, **fields)


def close_with(result: CallbackResult, attempts: int = 1) -> Any:
    return command(A.close, COMMAND_CENTER, callback=callback(result, attempts))


@pytest.mark.parametrize("result", [CallbackResult.satisfied, CallbackResult.basically_satisfied], ids=str)
def test_a_satisfied_or_basically_satisfied_complainant_closes_it(result: CallbackResult) -> None:
    done = transition(decide(complaint(), close_with(result), POLICY))
    assert (done.status, done.detail["callback"]) == (S.closed, result.value)


def test_an_unsatisfied_complainant_sends_it_back_for_rework_and_counts_it() -> None:
    done = transition(decide(complaint(rework_count=1), close_with(CallbackResult.unsatisfied), POLICY))
    assert done.status is S.in_progress
    assert (done.changes["rework_count"], done.detail["rework_count"]) == (2, 2)
    assert not done.raise_to_leadership


@pytest.mark.parametrize(
    ("cmd", "state"),
    [
        pytest.param(
            close_with(CallbackResult.unsatisfied), complaint(rework_count=2), id="third-unsatisfied"
        ),
        pytest.param(
            command(A.reopen, COMMAND_CENTER), order(S.feedback_submitted, rework_count=2), id="third-rework"
        ),
        pytest.param(command(A.reopen, COMMAND_CENTER), order(S.closed, rework_count=2), id="third-reopen"),
        pytest.param(command(A.reopen, COMMAND_CENTER), order(S.closed, rework_count=5), id="and-after"),
    ],
)
def test_the_policys_number_of_reworks_raises_the_order_to_leadership(cmd: Any, state: OrderState) -> None:
    done = transition(decide(state, cmd, POLICY))
    assert done.raise_to_leadership
    assert done.detail["raised_to_leadership"] is True


def test_the_number_of_reworks_is_policy() -> None:
    policy = LifecyclePolicy(reworks_to_leadership=1)
    done = transition(decide(order(S.feedback_submitted), command(A.reopen, COMMAND_CENTER), policy))
    assert done.raise_to_leadership


def test_a_reopened_complaint_cannot_be_closed_at_once_as_unreachable() -> None:
    """The squad closed a reopened complaint at once, "unreachable", with no new feedback."""
    state = run(
        complaint(S.closed),
        command(A.reopen, COMMAND_CENTER, note="投诉人再次来电"),
    )
    assert state.status is S.in_progress
    result = refusal(
        decide(state, command(A.close, callback=callback(CallbackResult.unreachable, 3)), POLICY)
    )
    assert result.code == "needs_new_feedback"
    state = run(state, command(A.feedback, disposition="case_filed"))
    done = transition(
        decide(state, command(A.close, callback=callback(CallbackResult.unreachable, 3)), POLICY)
    )
    assert (done.status, done.changes["disposition"]) == (S.closed, "case_filed")


@pytest.mark.parametrize(
    "sent_back",
    [
        pytest.param(command(A.reopen, COMMAND_CENTER), id="rework-by-the-command-center"),
        pytest.param(close_with(CallbackResult.unsatisfied), id="unsatisfied-complainant"),
    ],
)
@pytest.mark.parametrize("closer", ["squad-1", COMMAND_CENTER])
def test_a_reworked_order_closes_only_after_new_feedback(sent_back: Any, closer: str) -> None:
    state = run(complaint(), sent_back)
    close = command(A.close, closer, disposition="case_filed", callback=callback(CallbackResult.satisfied))
    assert refusal(decide(state, close, POLICY)).code == "needs_new_feedback"


def test_an_order_never_sent_back_may_still_close_straight_from_in_progress() -> None:
    state = order(S.in_progress)
    assert transition(decide(state, command(A.close, disposition="unfounded"), POLICY)).status is S.closed


ACTIONS = st.sampled_from(
    [
        command(A.reopen, COMMAND_CENTER),
        command(A.feedback, disposition="case_filed"),
        command(A.start),
        command(A.accept),
        close_with(CallbackResult.unsatisfied),
        close_with(CallbackResult.satisfied),
        close_with(CallbackResult.unreachable, 3),
        command(A.close, callback=callback(CallbackResult.basically_satisfied)),
    ]
)


@given(st.lists(ACTIONS, max_size=12))
def test_every_closing_after_a_send_back_follows_a_new_feedback(commands: list[Any]) -> None:
    """Whatever the sequence: between a send-back and a closing there is a feedback."""
    state, waiting_for_feedback = complaint(), False
    reworks = 0
    for cmd in commands:
        result = decide(state, cmd, POLICY)
        state = apply(state, result)
        event = getattr(result, "event", None)
        if event in ("reopened", "rework_requested"):
            waiting_for_feedback, reworks = True, reworks + 1
        elif event == "feedback_submitted":
            waiting_for_feedback = False
        elif event == "closed":
            assert not waiting_for_feedback
    assert state.rework_count == reworks


def test_the_callback_comes_at_its_own_time() -> None:
    cmd = command(A.close, at=T0 + timedelta(days=1), callback=callback(CallbackResult.satisfied))
    assert transition(decide(complaint(), cmd, POLICY)).changes["closed_at"] == T0 + timedelta(days=1)
