"""The work-order state machine: which command moves an order where, who may send it, and why not."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from workorder_pipeline.processors.lifecycle import LifecyclePolicy, OrderState, Refusal, Transition, decide
from workorder_pipeline.schemas.commands import (
    CallbackResult,
    CommandAction,
    Disposition,
    ReturnReason,
    WorkOrderCommand,
)
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.times import for_people
from workorder_pipeline.schemas.workorder import COMMAND_CENTER, Priority, WorkOrderStatus

S = WorkOrderStatus
A = CommandAction

POLICY = LifecyclePolicy()
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
DUE = T0 + timedelta(days=3)
UNITS = frozenset({"squad-1", "squad-2", COMMAND_CENTER, "legal"})
OFFICERS = ["officer-1", "officer-2"]
NON_COMPLAINTS = [k for k in SignalKind if k is not SignalKind.complaint]

_command_ids = itertools.count(1)


# ---------------------------------------------------------------- builders


def order(status: WorkOrderStatus = S.dispatched, **overrides: Any) -> OrderState:
    """An order as it would be stored in ``status``, owned by squad-1 unless said otherwise."""
    fields: dict[str, Any] = {
        "id": "WO-1",
        "kind": SignalKind.vehicle_alarm,
        "priority": Priority.P2,
        "status": status,
        "unit": "squad-1",
        "due_at": DUE,
        "known_units": UNITS,
    }
    if status in (S.accepted, S.in_progress, S.feedback_submitted, S.closed):
        fields["accepted_at"] = T0 - timedelta(hours=2)
    if status in (S.feedback_submitted, S.closed):
        fields["first_feedback_at"] = T0 - timedelta(hours=1)
        fields["disposition"] = Disposition.rectification_ordered.value
    if status is S.returned:
        fields["unit"] = COMMAND_CENTER
        fields["returned_at"] = T0 - timedelta(hours=1)
    fields.update(overrides)
    return OrderState(**fields)


def command(
    action: CommandAction,
    unit: str = "squad-1",
    *,
    at: datetime = T0 + timedelta(hours=1),
    officers: list[str] | None = None,
    **fields: Any,
) -> WorkOrderCommand:
    payload: dict[str, Any] = {
        "schema": "workorder-command/1",
        "command_id": f"cmd-{next(_command_ids)}",
        "work_order_id": "WO-1",
        "action": action.value,
        "actor": {"unit": unit, "officer_ids": OFFICERS if officers is None else officers},
        "at": at.isoformat(),
    }
    for name, value in fields.items():
        payload[name] = value.isoformat() if isinstance(value, datetime) else value
    return WorkOrderCommand.model_validate(payload)


def complete_command(
    action: CommandAction, unit: str, *, at: datetime = T0 + timedelta(hours=1)
) -> WorkOrderCommand:
    """A command with every field any action may need."""
    return command(
        action,
        unit,
        at=at,
        disposition=Disposition.case_filed.value,
        note="reason given",
        callback={"result": "satisfied", "at": at.isoformat()},
        to_unit="squad-2",
        new_due_at=DUE + timedelta(days=2),
        reason=ReturnReason.misrouted.value,
        extension={"working_days": 1},
    )


def callback(result: CallbackResult, attempts: int = 1) -> dict[str, Any]:
    return {"result": result.value, "at": T0.isoformat(), "attempts": attempts}


def transition(result: Transition | Refusal) -> Transition:
    assert isinstance(result, Transition), result
    return result


def refusal(result: Transition | Refusal) -> Refusal:
    assert isinstance(result, Refusal), result
    return result


ORDER_FIELDS = frozenset(f.name for f in dataclasses.fields(OrderState))


def apply(state: OrderState, result: Transition | Refusal) -> OrderState:
    """The order after a decision: a Transition's changes on the fields the state machine reads."""
    if isinstance(result, Refusal):
        return state
    return dataclasses.replace(state, **{k: v for k, v in result.changes.items() if k in ORDER_FIELDS})


def run(state: OrderState, *commands: WorkOrderCommand) -> OrderState:
    for cmd in commands:
        state = apply(state, transition(decide(state, cmd, POLICY)))
    return state


# ---------------------------------------------------------------- every state x every action

#: Written out from the module docstring's diagram, not from RULES: (status, action) -> new status.
ALLOWED: dict[tuple[WorkOrderStatus, CommandAction], WorkOrderStatus] = {
    (S.registered, A.reassign): S.dispatched,
    (S.registered, A.extend): S.registered,
    (S.dispatched, A.accept): S.accepted,
    (S.dispatched, A.return_): S.returned,
    (S.dispatched, A.reassign): S.dispatched,
    (S.dispatched, A.extend): S.dispatched,
    (S.accepted, A.start): S.in_progress,
    (S.accepted, A.return_): S.returned,
    (S.accepted, A.reassign): S.dispatched,
    (S.accepted, A.extend): S.accepted,
    (S.in_progress, A.feedback): S.feedback_submitted,
    (S.in_progress, A.close): S.closed,
    (S.in_progress, A.return_): S.returned,
    (S.in_progress, A.reassign): S.dispatched,
    (S.in_progress, A.extend): S.in_progress,
    (S.feedback_submitted, A.close): S.closed,
    (S.feedback_submitted, A.reopen): S.in_progress,
    (S.feedback_submitted, A.extend): S.feedback_submitted,
    (S.accepted, A.request_extension): S.accepted,
    (S.in_progress, A.request_extension): S.in_progress,
    (S.accepted, A.approve_extension): S.accepted,
    (S.in_progress, A.approve_extension): S.in_progress,
    (S.feedback_submitted, A.approve_extension): S.feedback_submitted,
    (S.accepted, A.reject_extension): S.accepted,
    (S.in_progress, A.reject_extension): S.in_progress,
    (S.feedback_submitted, A.reject_extension): S.feedback_submitted,
    (S.returned, A.reassign): S.dispatched,
    (S.returned, A.extend): S.returned,
    (S.closed, A.reopen): S.in_progress,
}

#: Who sends each action in the matrix: the order's unit, or the command center.
BY_COMMAND_CENTER = {A.reopen, A.reassign, A.extend, A.approve_extension, A.reject_extension}
#: Deciding on an extension needs one asked for.
NEEDS_PENDING = {A.approve_extension, A.reject_extension}

MATRIX = [
    pytest.param(
        status,
        action,
        ALLOWED.get((status, action)),
        id=f"{status}-{action}->{ALLOWED.get((status, action), 'refused')}",
    )
    for status in WorkOrderStatus
    for action in CommandAction
]


def test_matrix_covers_every_status_and_action() -> None:
    assert len(MATRIX) == len(WorkOrderStatus) * len(CommandAction) == 77


@pytest.mark.parametrize(("status", "action", "expected"), MATRIX)
def test_every_state_and_action_moves_to_the_diagram_status_or_is_refused(
    status: WorkOrderStatus, action: CommandAction, expected: WorkOrderStatus | None
) -> None:
    state = order(status, pending_extension_days=2) if action in NEEDS_PENDING else order(status)
    actor = COMMAND_CENTER if action in BY_COMMAND_CENTER else state.unit
    result = decide(state, complete_command(action, actor), POLICY)
    if expected is None:
        assert isinstance(result, Refusal), result
        assert result.code == "invalid_state"
        assert f"is {status.value}" in result.reason
    else:
        assert isinstance(result, Transition), result
        assert result.status is expected


def test_complaint_moves_through_its_whole_life_and_back() -> None:
    state = order(S.registered, kind=SignalKind.complaint, unit="legal")
    state = run(
        state,
        command(A.reassign, COMMAND_CENTER, to_unit="squad-1"),
        command(A.accept, "squad-1"),
        command(A.start, "squad-1"),
        command(A.feedback, "squad-1", disposition="unfounded"),
        command(A.close, COMMAND_CENTER, callback=callback(CallbackResult.unsatisfied)),
    )
    assert (state.status, state.reopen_count) == (S.in_progress, 1)
    state = run(
        state,
        command(A.feedback, "squad-1", disposition="case_filed"),
        command(A.close, COMMAND_CENTER, callback=callback(CallbackResult.satisfied)),
    )
    assert (state.status, state.disposition) == (S.closed, "case_filed")


# ---------------------------------------------------------------- authorization

#: A state in which each action is allowed, so only the actor can be the reason for a refusal.
STATE_ALLOWING = {
    A.accept: S.dispatched,
    A.start: S.accepted,
    A.feedback: S.in_progress,
    A.close: S.in_progress,
    A.return_: S.in_progress,
    A.reopen: S.closed,
    A.reassign: S.in_progress,
    A.extend: S.in_progress,
    A.request_extension: S.in_progress,
    A.approve_extension: S.in_progress,
    A.reject_extension: S.in_progress,
}


@pytest.mark.parametrize("action", list(CommandAction), ids=str)
def test_a_squad_acting_on_another_squads_order_is_forbidden(action: CommandAction) -> None:
    result = refusal(decide(order(STATE_ALLOWING[action]), complete_command(action, "squad-2"), POLICY))
    assert result.code == "forbidden"
    assert "squad-1" in result.reason


@pytest.mark.parametrize("action", [A.reassign, A.extend, A.reopen], ids=str)
@pytest.mark.parametrize("status", [S.in_progress, S.feedback_submitted, S.closed], ids=str)
def test_the_orders_own_squad_may_not_reassign_extend_or_reopen(
    action: CommandAction, status: WorkOrderStatus
) -> None:
    assert refusal(decide(order(status), complete_command(action, "squad-1"), POLICY)).code == "forbidden"


@pytest.mark.parametrize("action", [A.accept, A.start, A.feedback, A.return_], ids=str)
def test_the_command_center_may_not_do_the_squads_field_work(action: CommandAction) -> None:
    state = order(STATE_ALLOWING[action])
    assert refusal(decide(state, complete_command(action, COMMAND_CENTER), POLICY)).code == "forbidden"


@pytest.mark.parametrize("status", [S.in_progress, S.feedback_submitted], ids=str)
@pytest.mark.parametrize("actor", ["squad-1", COMMAND_CENTER])
def test_the_unit_or_the_command_center_may_close(status: WorkOrderStatus, actor: str) -> None:
    assert transition(decide(order(status), complete_command(A.close, actor), POLICY)).status is S.closed


# ---------------------------------------------------------------- closing


def test_closing_without_any_disposition_is_refused() -> None:
    result = refusal(decide(order(S.in_progress), command(A.close), POLICY))
    assert result.code == "missing_field"


def test_closing_takes_the_disposition_from_the_earlier_feedback() -> None:
    state = order(S.feedback_submitted, disposition="unfounded")
    done = transition(decide(state, command(A.close, COMMAND_CENTER), POLICY))
    assert done.changes["disposition"] == "unfounded"


def test_closing_with_a_disposition_overrides_the_feedbacks() -> None:
    state = order(S.feedback_submitted, disposition="unfounded")
    done = transition(decide(state, command(A.close, disposition="transferred"), POLICY))
    assert done.changes["disposition"] == "transferred"


@pytest.mark.parametrize(
    "officers",
    [pytest.param([], id="none"), pytest.param(["a"], id="one"), pytest.param(["a", "a"], id="one-twice")],
)
def test_closing_needs_two_distinct_officers(officers: list[str]) -> None:
    cmd = command(A.close, officers=officers, disposition="case_filed")
    assert refusal(decide(order(S.in_progress), cmd, POLICY)).code == "too_few_officers"


def test_closing_with_two_distinct_officers_among_repeats_is_allowed() -> None:
    cmd = command(A.close, officers=["a", "a", "b"], disposition="case_filed")
    assert transition(decide(order(S.in_progress), cmd, POLICY)).status is S.closed


def test_closing_sets_closed_at_to_the_commands_time() -> None:
    at = T0 + timedelta(hours=5)
    done = transition(decide(order(S.feedback_submitted), command(A.close, at=at), POLICY))
    assert done.changes["closed_at"] == at
    assert done.event == "closed"


@pytest.mark.parametrize(
    ("at", "on_time"),
    [
        pytest.param(DUE - timedelta(seconds=1), True, id="before-due"),
        pytest.param(DUE, True, id="exactly-at-due"),
        pytest.param(DUE + timedelta(seconds=1), False, id="after-due"),
    ],
)
@pytest.mark.parametrize("kind", list(SignalKind), ids=str)
def test_closed_on_time_compares_the_closing_time_with_due_at(
    at: datetime, on_time: bool, kind: SignalKind
) -> None:
    cmd = command(A.close, at=at, callback=callback(CallbackResult.satisfied))
    done = transition(decide(order(S.feedback_submitted, kind=kind), cmd, POLICY))
    assert done.status is S.closed
    assert done.changes["closed_on_time"] is on_time


def test_closing_a_complaint_without_a_callback_is_refused() -> None:
    state = order(S.feedback_submitted, kind=SignalKind.complaint)
    assert refusal(decide(state, command(A.close), POLICY)).code == "missing_field"


@pytest.mark.parametrize("kind", NON_COMPLAINTS, ids=str)
def test_other_kinds_close_without_a_callback(kind: SignalKind) -> None:
    state = order(S.feedback_submitted, kind=kind)
    assert transition(decide(state, command(A.close), POLICY)).status is S.closed


@pytest.mark.parametrize(
    ("status", "reopen_count"), [(S.in_progress, 0), (S.feedback_submitted, 0), (S.feedback_submitted, 2)]
)
def test_an_unsatisfied_complainant_reopens_the_complaint(status: WorkOrderStatus, reopen_count: int) -> None:
    state = order(status, kind=SignalKind.complaint, reopen_count=reopen_count, disposition="unfounded")
    cmd = command(A.close, COMMAND_CENTER, callback=callback(CallbackResult.unsatisfied))
    reopened = transition(decide(state, cmd, POLICY))
    assert reopened.event == "reopened"
    assert reopened.status is S.in_progress
    assert reopened.changes["reopen_count"] == reopen_count + 1
    assert reopened.changes["rework_count"] == 1
    assert "closed_at" not in reopened.changes


@pytest.mark.parametrize("attempts", [1, 2])
def test_an_unreachable_complainant_needs_three_attempts_before_closing(attempts: int) -> None:
    state = order(S.feedback_submitted, kind=SignalKind.complaint)
    cmd = command(A.close, callback=callback(CallbackResult.unreachable, attempts))
    assert refusal(decide(state, cmd, POLICY)).code == "callback_incomplete"


@pytest.mark.parametrize("attempts", [3, 4, 100])
def test_an_unreachable_complainant_after_three_attempts_closes(attempts: int) -> None:
    state = order(S.feedback_submitted, kind=SignalKind.complaint)
    cmd = command(A.close, callback=callback(CallbackResult.unreachable, attempts))
    done = transition(decide(state, cmd, POLICY))
    assert done.status is S.closed
    assert done.detail["callback"] == "unreachable"


# ---------------------------------------------------------------- feedback and accept


def test_feedback_without_a_disposition_is_refused() -> None:
    assert refusal(decide(order(S.in_progress), command(A.feedback), POLICY)).code == "missing_field"


@pytest.mark.parametrize("officers", [[], ["a"], ["a", "a"]], ids=["none", "one", "one-twice"])
def test_feedback_needs_two_distinct_officers(officers: list[str]) -> None:
    cmd = command(A.feedback, officers=officers, disposition="case_filed")
    assert refusal(decide(order(S.in_progress), cmd, POLICY)).code == "too_few_officers"


def test_first_feedback_records_the_disposition_and_its_time() -> None:
    at = T0 + timedelta(hours=4)
    state = order(S.in_progress, first_feedback_at=None)
    done = transition(
        decide(state, command(A.feedback, at=at, disposition="warning_minor_violation"), POLICY)
    )
    assert done.status is S.feedback_submitted
    assert done.changes["disposition"] == "warning_minor_violation"
    assert done.changes["first_feedback_at"] == at


def test_feedback_after_rework_keeps_the_first_feedback_time() -> None:
    first = T0 + timedelta(hours=4)
    state = run(
        order(S.in_progress, first_feedback_at=None),
        command(A.feedback, at=first, disposition="unfounded"),
        command(A.reopen, COMMAND_CENTER, at=first + timedelta(hours=1)),
        command(A.feedback, at=first + timedelta(hours=6), disposition="case_filed"),
    )
    assert state.status is S.feedback_submitted
    assert state.first_feedback_at == first
    assert state.disposition == "case_filed"


def test_accept_records_accepted_at() -> None:
    at = T0 + timedelta(minutes=30)
    done = transition(decide(order(S.dispatched), command(A.accept, at=at), POLICY))
    assert done.changes == {"status": S.accepted, "accepted_at": at}


def test_accept_after_reassignment_keeps_the_first_accepted_at() -> None:
    first = T0 + timedelta(minutes=30)
    state = run(
        order(S.dispatched),
        command(A.accept, "squad-1", at=first),
        command(A.reassign, COMMAND_CENTER, at=first + timedelta(hours=1), to_unit="squad-2"),
        command(A.accept, "squad-2", at=first + timedelta(hours=2)),
    )
    assert (state.status, state.unit, state.accepted_at) == (S.accepted, "squad-2", first)


# ---------------------------------------------------------------- return


def test_return_without_a_reason_is_refused() -> None:
    assert refusal(decide(order(S.dispatched), command(A.return_), POLICY)).code == "missing_field"


@pytest.mark.parametrize("status", [S.dispatched, S.accepted, S.in_progress], ids=str)
@pytest.mark.parametrize("reason", list(ReturnReason), ids=str)
def test_return_hands_the_order_to_the_command_center(status: WorkOrderStatus, reason: ReturnReason) -> None:
    at = T0 + timedelta(hours=2)
    done = transition(decide(order(status), command(A.return_, at=at, reason=reason.value), POLICY))
    assert done.event == "returned"
    assert done.changes == {"status": S.returned, "unit": COMMAND_CENTER, "returned_at": at}
    assert done.detail == {"reason": reason.value, "returned_by": "squad-1"}


# ---------------------------------------------------------------- reassign


def test_reassign_without_a_target_is_refused() -> None:
    assert refusal(decide(order(S.dispatched), command(A.reassign, COMMAND_CENTER), POLICY)).code == (
        "missing_field"
    )


def test_reassign_to_an_unknown_unit_is_refused() -> None:
    result = refusal(
        decide(order(S.dispatched), command(A.reassign, COMMAND_CENTER, to_unit="squad-9"), POLICY)
    )
    assert result.code == "unknown_unit"
    assert "squad-9" in result.reason


@pytest.mark.parametrize("status", [S.registered, S.dispatched, S.accepted, S.in_progress], ids=str)
def test_reassign_to_the_same_unit_is_refused(status: WorkOrderStatus) -> None:
    cmd = command(A.reassign, COMMAND_CENTER, to_unit="squad-1")
    assert refusal(decide(order(status), cmd, POLICY)).code == "no_change"


def test_a_returned_order_may_go_back_to_the_unit_it_names() -> None:
    state = order(S.returned, unit="squad-1")
    done = transition(decide(state, command(A.reassign, COMMAND_CENTER, to_unit="squad-1"), POLICY))
    assert (done.status, done.changes["unit"]) == (S.dispatched, "squad-1")


def test_a_returned_order_may_go_back_to_the_squad_that_returned_it() -> None:
    state = run(order(S.dispatched), command(A.return_, reason="insufficient_information"))
    done = transition(decide(state, command(A.reassign, COMMAND_CENTER, to_unit="squad-1"), POLICY))
    assert (done.status, done.changes["unit"], done.redispatch) == (S.dispatched, "squad-1", True)


def test_reassign_moves_the_order_and_redispatches_it() -> None:
    done = transition(
        decide(order(S.in_progress), command(A.reassign, COMMAND_CENTER, to_unit="squad-2"), POLICY)
    )
    assert done.event == "reassigned"
    assert (done.status, done.changes["unit"], done.redispatch) == (S.dispatched, "squad-2", True)
    assert "due_at" not in done.changes


def test_time_spent_returned_moves_due_at_later_by_exactly_that_time() -> None:
    returned_at = T0 + timedelta(hours=1)
    state = run(order(S.accepted), command(A.return_, at=returned_at, reason="misrouted"))
    assert (state.status, state.unit, state.returned_at) == (S.returned, COMMAND_CENTER, returned_at)
    done = transition(
        decide(
            state,
            command(A.reassign, COMMAND_CENTER, at=returned_at + timedelta(hours=5), to_unit="squad-2"),
            POLICY,
        )
    )
    assert done.changes["due_at"] == DUE + timedelta(hours=5)
    assert done.changes["returned_seconds"] == 5 * 3600
    assert done.changes["returned_at"] is None
    assert done.redispatch is True


def test_two_returns_add_up() -> None:
    t1 = T0 + timedelta(hours=1)
    t2 = T0 + timedelta(days=1)
    state = run(
        order(S.dispatched),
        command(A.return_, "squad-1", at=t1, reason="misrouted"),
        command(A.reassign, COMMAND_CENTER, at=t1 + timedelta(hours=5), to_unit="squad-2"),
        command(A.return_, "squad-2", at=t2, reason="not_our_jurisdiction"),
        command(A.reassign, COMMAND_CENTER, at=t2 + timedelta(hours=2, minutes=30), to_unit="legal"),
    )
    assert state.returned_seconds == 7.5 * 3600
    assert state.due_at == DUE + timedelta(hours=7, minutes=30)
    assert (state.status, state.unit, state.returned_at) == (S.dispatched, "legal", None)


def test_a_reassign_stamped_before_the_return_never_moves_due_at_earlier() -> None:
    state = order(S.returned, returned_at=T0 + timedelta(hours=2))
    cmd = command(A.reassign, COMMAND_CENTER, at=T0 + timedelta(hours=1), to_unit="squad-2")
    done = transition(decide(state, cmd, POLICY))
    assert done.changes["returned_seconds"] == 0
    assert done.changes["due_at"] == DUE


# ---------------------------------------------------------------- extend


def test_extend_without_a_new_due_at_is_refused() -> None:
    cmd = command(A.extend, COMMAND_CENTER, note="weather")
    assert refusal(decide(order(S.in_progress), cmd, POLICY)).code == "missing_field"


@pytest.mark.parametrize("note", [None, "", "   "], ids=["absent", "empty", "blank"])
def test_extend_without_a_note_is_refused(note: str | None) -> None:
    fields: dict[str, Any] = {"new_due_at": DUE + timedelta(days=1)}
    if note is not None:
        fields["note"] = note
    assert refusal(
        decide(order(S.in_progress), command(A.extend, COMMAND_CENTER, **fields), POLICY)
    ).code == ("missing_field")


@pytest.mark.parametrize(
    "new_due_at",
    [pytest.param(DUE, id="same"), pytest.param(DUE - timedelta(seconds=1), id="earlier")],
)
def test_extend_to_a_due_at_not_later_is_refused(new_due_at: datetime) -> None:
    cmd = command(A.extend, COMMAND_CENTER, new_due_at=new_due_at, note="weather")
    refused = refusal(decide(order(S.in_progress), cmd, POLICY))
    assert refused.code == "not_later"
    # The reason is read by an officer: the current due time in China time, to the second.
    assert refused.reason.endswith(for_people(DUE))
    assert "+08:00" in refused.reason


@pytest.mark.parametrize(
    "status",
    [S.registered, S.dispatched, S.accepted, S.in_progress, S.feedback_submitted, S.returned],
    ids=str,
)
def test_extend_sets_a_firm_later_deadline_and_redispatches(status: WorkOrderStatus) -> None:
    new_due_at = DUE + timedelta(seconds=1)
    cmd = command(A.extend, COMMAND_CENTER, new_due_at=new_due_at, note="weather")
    done = transition(decide(order(status), cmd, POLICY))
    assert done.event == "extended"
    assert done.changes == {"due_at": new_due_at, "deadline_provisional": False, "status": status}
    assert done.redispatch is True


# ---------------------------------------------------------------- reopen


def test_reopening_feedback_requests_rework() -> None:
    state = order(S.feedback_submitted, reopen_count=1)
    done = transition(decide(state, command(A.reopen, COMMAND_CENTER, note="photos missing"), POLICY))
    assert done.event == "rework_requested"
    assert done.changes == {"status": S.in_progress, "rework_count": 1}
    assert done.detail == {"note_given": True, "rework_count": 1}


def test_reopening_a_closed_order_clears_its_closing() -> None:
    state = order(S.closed, reopen_count=1)
    done = transition(decide(state, command(A.reopen, COMMAND_CENTER), POLICY))
    assert done.event == "reopened"
    assert done.changes == {
        "status": S.in_progress,
        "reopen_count": 2,
        "closed_at": None,
        "closed_on_time": None,
        "rework_count": 1,
    }
    assert done.detail == {"note_given": False, "rework_count": 1}


# ---------------------------------------------------------------- property: any sequence of commands

COLUMNS = ORDER_FIELDS | {"closed_at", "closed_on_time", "deadline_provisional"}


def usually(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Present three times in four, so that sequences get deep into the life of an order."""
    return st.one_of(values, values, values, st.none())


OPTIONAL_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "disposition": st.sampled_from([d.value for d in Disposition]),
    "note": st.sampled_from(["", "  ", "weather", "photos missing", "complainant called back"]),
    "callback": st.fixed_dictionaries(
        {"result": st.sampled_from([r.value for r in CallbackResult]), "attempts": st.integers(1, 5)}
    ),
    "to_unit": st.sampled_from(["squad-1", "squad-2", COMMAND_CENTER, "legal", "squad-9"]),
    "new_due_in_hours": st.integers(-48, 240),
    "reason": st.sampled_from([r.value for r in ReturnReason]),
}

COMMAND_SPECS = st.fixed_dictionaries(
    {
        "actor": st.sampled_from(["unit", "unit", "unit", "command center", "command center", "other squad"]),
        "officers": st.one_of(
            st.just(["o1", "o2"]),
            st.just(["o2", "o3"]),
            st.lists(st.sampled_from(["o1", "o2", "o3"]), max_size=3),
        ),
        "minutes_later": st.integers(-60, 3 * 24 * 60),
        **{name: usually(values) for name, values in OPTIONAL_FIELDS.items()},
    }
)


def actions_for(status: WorkOrderStatus) -> st.SearchStrategy[CommandAction]:
    """Any action; two times in three one the diagram allows now, so that orders get far in their life."""
    allowed = st.sampled_from([action for (s, action) in ALLOWED if s is status])
    return st.one_of(st.sampled_from(list(CommandAction)), allowed, allowed)


def build(state: OrderState, action: CommandAction, spec: dict[str, Any], at: datetime) -> WorkOrderCommand:
    other_squad = "squad-2" if state.unit != "squad-2" else "squad-1"
    unit = {"unit": state.unit, "other squad": other_squad, "command center": COMMAND_CENTER}[spec["actor"]]
    fields = {k: v for k, v in spec.items() if k in OPTIONAL_FIELDS and v is not None}
    if "callback" in fields:
        fields["callback"] = {**fields["callback"], "at": at.isoformat()}
    if "new_due_in_hours" in fields:
        fields["new_due_at"] = state.due_at + timedelta(hours=fields.pop("new_due_in_hours"))
    return command(action, unit, at=at, officers=spec["officers"], **fields)


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(list(SignalKind)),
    start=st.sampled_from([S.registered, S.dispatched]),
    steps=st.integers(0, 30),
    data=st.data(),
)
def test_no_sequence_of_commands_breaks_the_order(
    kind: SignalKind, start: WorkOrderStatus, steps: int, data: st.DataObject
) -> None:
    state = order(start, kind=kind)
    columns: dict[str, Any] = {"closed_at": None}
    at = T0
    for _ in range(steps):
        action = data.draw(actions_for(state.status), label="action")
        spec = data.draw(COMMAND_SPECS, label="command")
        at += timedelta(minutes=spec["minutes_later"])
        result = decide(state, build(state, action, spec, at), POLICY)  # never raises
        assert isinstance(result, Transition | Refusal)
        if isinstance(result, Transition):
            assert set(result.changes) <= COLUMNS, result.changes
            assert result.status in set(WorkOrderStatus)
            columns.update(result.changes)
            state = apply(state, result)
        assert state.status in set(WorkOrderStatus)
        if state.status is S.closed:
            assert columns["closed_at"] is not None
            assert state.disposition is not None
        event(f"reached {state.status.value}")
