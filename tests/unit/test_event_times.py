"""Event times at receipt: an old complaint is answered (late), an old alarm, suspect or
check-in is a ``stale`` suppression, a time from the future beyond clock skew is a dead letter.

The bundled samples are dated November 2026; received 500 days later they are all too old.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from tests.unit.test_intake_service import NOW, POLICY, REFERENCE, make_intake, messages_from, new_store
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.processors.intake import EventTime, Rejection, event_time
from workorder_pipeline.processors.triage import Action, SuppressionReason
from workorder_pipeline.schemas.deadletter import RejectionReason
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.services.rules import explain, replay_stored
from workorder_pipeline.streams.metrics import record_intake

LATER = NOW + timedelta(days=500)
AGE, LEAD = timedelta(days=400), timedelta(hours=1)
OTHER_KINDS = ("vehicle-alarms.jsonl", "suspects.jsonl", "checkin-failures.jsonl")


def test_an_old_complaint_becomes_an_order_marked_as_received_late() -> None:
    store = new_store()
    complaint = messages_from("complaints.jsonl")[:1]
    result = make_intake(store).handle(complaint, LATER)
    assert result.dead_letters == [] and result.suppressed == {}
    (order,) = result.created
    assert result.late == {SignalKind.complaint: 1}
    registered = store.history(order.id)[0]
    assert registered["type"] == "registered"
    assert registered["detail"]["received_late"] is True
    first = registered["detail"]["steps"][0]
    assert (first["step"], first["outcome"]) == ("event_time", "late")
    assert "more than 400 days before its receipt" in first["reason"]


def test_a_complaint_on_time_is_not_marked_late() -> None:
    store = new_store()
    result = make_intake(store).handle(messages_from("complaints.jsonl")[:1], NOW)
    (order,) = result.created
    assert result.late == {}
    detail = store.history(order.id)[0]["detail"]
    assert "received_late" not in detail
    assert all(step["step"] != "event_time" for step in detail["steps"])


@pytest.mark.parametrize("file", OTHER_KINDS)
def test_an_old_signal_that_is_not_a_complaint_is_recorded_as_stale_not_dead_lettered(file: str) -> None:
    store = new_store()
    messages = messages_from(file)
    result = make_intake(store).handle(messages, LATER)
    assert result.dead_letters == [] and result.created == []
    valid = sum(result.received.values())
    assert valid == len(messages)
    assert result.suppressed == {SuppressionReason.stale: valid - sum(result.redelivered.values())}
    rows = store.suppressed()
    assert {row["reason"] for row in rows} == {"stale"}
    assert {row["rule_key"] for row in rows} == {"max_event_age"}
    assert all("too old to act on" in row["detail"] and row["unit"] for row in rows)


def test_a_stale_signal_is_kept_for_replay_like_other_suppressions() -> None:
    store = new_store()
    alarm = messages_from("vehicle-alarms.jsonl")[:1]
    make_intake(store).handle(alarm, LATER)
    stored = store.stored_signals(LATER - timedelta(seconds=1), LATER + timedelta(seconds=1))
    assert [signal["alarm_id"] for signal, _ in stored] == [json.loads(alarm[0].value or b"")["alarm_id"]]


def test_a_replayed_stale_signal_stays_stale_under_both_policies() -> None:
    store = new_store()
    alarms = messages_from("vehicle-alarms.jsonl")
    result = make_intake(store).handle(alarms, LATER)
    stale = result.suppressed[SuppressionReason.stale]
    window = (LATER - timedelta(seconds=1), LATER + timedelta(seconds=1))
    report = replay_stored(store, *window, POLICY, POLICY, REFERENCE, LATER + timedelta(days=1))
    assert report.signals == stale
    assert report.current == report.candidate == {Action.suppress: stale}


def test_a_stale_signal_delivered_again_is_a_redelivery_not_a_second_record() -> None:
    store = new_store()
    alarm = messages_from("vehicle-alarms.jsonl")[:1]
    make_intake(store).handle(alarm, LATER)
    again = make_intake(store).handle(alarm, LATER + timedelta(minutes=1))
    assert again.redelivered == {SignalKind.vehicle_alarm: 1}
    assert again.suppressed == {} and again.dead_letters == []
    assert len(store.suppressed()) == 1


def test_stale_suppressions_and_late_complaints_are_counted_in_metrics() -> None:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    stale_before = value("wo_signals_suppressed_total", reason="stale")
    late_before = value("wo_signals_late_total", kind="complaint")
    result = make_intake().handle(messages_from("vehicle-alarms.jsonl", "complaints.jsonl"), LATER)
    record_intake(result, LATER)
    stale = result.suppressed[SuppressionReason.stale]
    assert stale > 0
    assert value("wo_signals_suppressed_total", reason="stale") - stale_before == stale
    assert value("wo_signals_late_total", kind="complaint") - late_before == result.late[SignalKind.complaint]


@pytest.mark.parametrize(
    ("kind", "age", "expected"),
    [
        (SignalKind.vehicle_alarm, AGE, EventTime.on_time),
        (SignalKind.vehicle_alarm, AGE + timedelta(seconds=1), EventTime.stale),
        (SignalKind.suspect, AGE + timedelta(seconds=1), EventTime.stale),
        (SignalKind.checkin_failure, AGE + timedelta(seconds=1), EventTime.stale),
        (SignalKind.complaint, AGE, EventTime.on_time),
        (SignalKind.complaint, AGE + timedelta(seconds=1), EventTime.late),
        (SignalKind.complaint, timedelta(days=36500), EventTime.late),
    ],
)
def test_the_age_limit_is_inclusive_and_only_complaints_are_answered_late(
    kind: SignalKind, age: timedelta, expected: EventTime
) -> None:
    judged = event_time(kind, NOW - age, NOW, AGE, LEAD)
    assert not isinstance(judged, Rejection)
    assert judged[0] is expected


@pytest.mark.parametrize("kind", list(SignalKind))
def test_a_time_beyond_the_clock_skew_is_a_dead_letter_for_every_kind(kind: SignalKind) -> None:
    assert event_time(kind, NOW + LEAD, NOW, AGE, LEAD) == (EventTime.on_time, "")
    rejected = event_time(kind, NOW + LEAD + timedelta(seconds=1), NOW, AGE, LEAD)
    assert isinstance(rejected, Rejection)
    assert rejected.reason is RejectionReason.implausible_time
    expected = "2026-11-22 18:00:01+08:00 is more than 1:00:00 ahead of 2026-11-22 17:00:00+08:00"
    assert expected in rejected.detail


def test_explain_shows_a_stale_alarm_as_the_worker_records_it() -> None:
    alarm = messages_from("vehicle-alarms.jsonl")[0].value or b""
    explained = explain(alarm, compile_policy(POLICY), REFERENCE, LATER, make_intake().calendar)
    assert not isinstance(explained, Rejection)
    assert explained.outcome.suppression is not None
    assert explained.outcome.suppression.reason is SuppressionReason.stale
    assert explained.order is None
