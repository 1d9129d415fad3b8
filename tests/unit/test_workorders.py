"""Opening work orders: stable ids, deadlines, suspects' regions, and the dispatched message."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.processors.intake import Rejection, decode_event
from workorder_pipeline.processors.signals import busiest_checkpoint_region, to_signal
from workorder_pipeline.processors.triage import BatchTriageState, ReferenceIndex, triage
from workorder_pipeline.processors.workorders import deadline, open_work_order, work_order_id
from workorder_pipeline.schemas.inbound import Checkpoint, Complaint, InboundEvent, Suspect
from workorder_pipeline.schemas.policy import Deadlines, ReferenceData
from workorder_pipeline.schemas.signal import Signal, SignalKind
from workorder_pipeline.schemas.workorder import DispatchedWorkOrder, Priority, WorkOrder, WorkOrderStatus
from workorder_pipeline.services.calendar_files import load_calendar
from workorder_pipeline.services.policy_files import load_policy

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
POLICY = load_policy(ROOT / "policy")
CALENDAR = load_calendar(ROOT / "policy")
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)

SAMPLE_FILES = {
    "vehicle-alarms.jsonl": "vehicle-alarm/1",
    "suspects.jsonl": "suspect/1",
    "checkin-failures.jsonl": "checkin-failure/1",
    "complaints.jsonl": "complaint/1",
}


def sample_events(file: str) -> list[InboundEvent]:
    events = []
    for line in (SAMPLES / file).read_bytes().splitlines():
        event = decode_event(line, SAMPLE_FILES[file])
        assert not isinstance(event, Rejection), event
        events.append(event)
    return events


ALL_EVENTS = [event for file in SAMPLE_FILES for event in sample_events(file)]
COMPLAINTS = [event for event in sample_events("complaints.jsonl") if isinstance(event, Complaint)]


def signal(kind: SignalKind, source_id: str, **changes: Any) -> Signal:
    fields: dict[str, Any] = {"kind": kind, "source_id": source_id, "occurred_at": NOW, "summary": "s"}
    return Signal.model_validate({**fields, **changes})


def order_for(event: InboundEvent, now: datetime = NOW) -> WorkOrder:
    outcome = triage(
        to_signal(event), compile_policy(POLICY), ReferenceIndex(ReferenceData()), BatchTriageState(), now
    )
    return open_work_order(outcome, POLICY.deadlines, CALENDAR, now)


def due_at(sig: Signal, priority: Priority, deadlines: Deadlines, now: datetime) -> datetime:
    return deadline(sig, priority, deadlines, CALENDAR, now).due_at


def end_of_china_day(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=timezone(timedelta(hours=8))) + timedelta(days=1)


# ---------------------------------------------------------------- ids


def test_work_order_id_is_the_same_for_a_redelivered_signal() -> None:
    first = signal(SignalKind.vehicle_alarm, "js-key-vehicles/JSKV-1")
    again = signal(
        SignalKind.vehicle_alarm,
        "js-key-vehicles/JSKV-1",
        occurred_at=NOW + timedelta(hours=1),
        summary="other",
    )
    assert work_order_id(first) == work_order_id(again)


def test_work_order_id_differs_across_kinds_for_the_same_source_id() -> None:
    ids = {work_order_id(signal(kind, "SAME-ID")) for kind in SignalKind}
    assert len(ids) == len(SignalKind)


def test_work_order_id_differs_across_source_ids() -> None:
    assert work_order_id(signal(SignalKind.suspect, "FYZZ-1")) != work_order_id(
        signal(SignalKind.suspect, "FYZZ-2")
    )


@pytest.mark.parametrize(
    ("kind", "prefix"),
    [
        (SignalKind.vehicle_alarm, "WO-VA-"),
        (SignalKind.suspect, "WO-SU-"),
        (SignalKind.checkin_failure, "WO-CK-"),
        (SignalKind.complaint, "WO-CP-"),
    ],
)
def test_work_order_id_shows_its_kind(kind: SignalKind, prefix: str) -> None:
    order_id = work_order_id(signal(kind, "X"))
    assert order_id.startswith(prefix)
    assert re.fullmatch(r"WO-[A-Z]{2}-[0-9A-F]{16}", order_id)


def test_every_sample_event_gets_its_own_order_id_except_the_resend() -> None:
    ids = [work_order_id(to_signal(event)) for event in ALL_EVENTS]
    assert len(ids) - len(set(ids)) == 1  # vehicle-alarms.jsonl lines 6 and 8 are the same alarm


@settings(max_examples=100, deadline=None, database=None)
@given(st.sampled_from(list(SignalKind)), st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_work_order_id_is_a_function_of_kind_and_source_id(kind: SignalKind, a: str, b: str) -> None:
    assert work_order_id(signal(kind, a)) == work_order_id(signal(kind, a))
    assert (work_order_id(signal(kind, a)) == work_order_id(signal(kind, b))) == (a == b)


# ---------------------------------------------------------------- deadlines


@pytest.mark.parametrize(
    ("kind", "priority", "expected"),
    [
        # NOW is Sunday 22 Nov 2026, 17:00 in China: at the cut-off, so working days count
        # from Tuesday 24 Nov (day 1).
        (SignalKind.vehicle_alarm, Priority.P1, NOW + timedelta(hours=24)),
        (SignalKind.vehicle_alarm, Priority.P2, end_of_china_day(2026, 11, 26)),  # Tue, Wed, Thu
        (SignalKind.suspect, Priority.P3, end_of_china_day(2026, 11, 30)),  # Tue..Fri, Mon
        (SignalKind.checkin_failure, Priority.P3, end_of_china_day(2026, 11, 30)),
        (SignalKind.complaint, Priority.P1, NOW + timedelta(hours=24)),
        (SignalKind.complaint, Priority.P2, end_of_china_day(2026, 11, 25)),
        (SignalKind.complaint, Priority.P3, end_of_china_day(2026, 11, 26)),
    ],
)
def test_due_at_follows_the_policy_limit(kind: SignalKind, priority: Priority, expected: datetime) -> None:
    assert due_at(signal(kind, "X"), priority, POLICY.deadlines, NOW) == expected


def test_a_complaints_upstream_deadline_caps_ours() -> None:
    upstream = NOW + timedelta(hours=20)
    complaint = signal(SignalKind.complaint, "12395/T", upstream_due_at=upstream)
    assert due_at(complaint, Priority.P3, POLICY.deadlines, NOW) == upstream


def test_a_later_upstream_deadline_leaves_the_policy_limit() -> None:
    complaint = signal(SignalKind.complaint, "12345/T", upstream_due_at=NOW + timedelta(days=30))
    assert due_at(complaint, Priority.P3, POLICY.deadlines, NOW) == end_of_china_day(2026, 11, 26)


def test_urgent_waterway_complaint_is_due_when_the_ticket_is() -> None:
    waterway = next(c for c in COMPLAINTS if c.category == "waterway")
    received = waterway.received_at
    order = order_for(waterway, now=received + timedelta(minutes=5))
    assert order.due_at == waterway.due_at == received + timedelta(hours=24)
    assert order.upstream_due_at == waterway.due_at


@settings(max_examples=100, deadline=None, database=None)
@given(st.integers(min_value=-200, max_value=400), st.sampled_from(list(Priority)))
def test_due_at_is_never_after_the_upstream_deadline(offset_hours: int, priority: Priority) -> None:
    upstream = NOW + timedelta(hours=offset_hours)
    complaint = signal(SignalKind.complaint, "12345/T", upstream_due_at=upstream)
    due = due_at(complaint, priority, POLICY.deadlines, NOW)
    assert due <= upstream
    assert (
        due <= deadline(signal(SignalKind.complaint, "X"), priority, POLICY.deadlines, CALENDAR, NOW).due_at
    )


# ---------------------------------------------------------------- opening an order


def test_an_opened_order_is_registered_with_the_routing_decision() -> None:
    night_ban = sample_events("vehicle-alarms.jsonl")[3]
    order = order_for(night_ban)
    assert order.status == WorkOrderStatus.registered
    assert (order.unit, order.priority, order.route_key) == (
        "squad-1",
        Priority.P1,
        "alarm.passenger.night-ban",
    )
    assert order.created_at == NOW
    assert order.due_at == NOW + timedelta(hours=24)
    assert order.source_ids == ("js-key-vehicles/JSKV-20261120-000873",)
    assert order.occurrences == 1
    assert order.first_seen_at == order.last_seen_at == datetime(2026, 11, 19, 18, 41, 10, tzinfo=UTC)
    assert order.subject.plate == "苏F2C518"
    assert order.subject.enterprise_id == "91320682MA1P7Q4R76"


def test_a_private_vehicles_order_has_a_plate_but_no_enterprise() -> None:
    private = next(e for e in sample_events("vehicle-alarms.jsonl") if getattr(e, "enterprise", 1) is None)
    order = order_for(private)
    assert order.subject.plate == "苏F9E552"
    assert order.subject.enterprise_id is None


def test_a_full_width_plate_reaches_the_order_normalized() -> None:
    order = order_for(sample_events("vehicle-alarms.jsonl")[2])
    assert order.subject.plate == "苏F3T827"


# ---------------------------------------------------------------- suspects' regions


def suspect(checkpoints: list[tuple[str, str, int]]) -> Suspect:
    return Suspect.model_validate(
        {
            "schema": "suspect/1",
            "entry_id": "FYZZ-TEST",
            "list_date": date(2026, 11, 21),
            "plate": "苏F8K2M6",
            "suspect_type": "high_frequency_illegal_operation",
            "window_days": 30,
            "pass_count": sum(passes for _, _, passes in checkpoints),
            "checkpoints": [{"id": i, "region_code": r, "passes": p} for i, r, p in checkpoints],
        }
    )


@pytest.mark.parametrize(
    ("checkpoints", "region"),
    [
        pytest.param(
            [("a", "320682", 30), ("b", "320682", 30), ("c", "320612", 50)], "320682", id="sums-per-region"
        ),
        pytest.param(
            [("a", "320682", 30), ("b", "320682", 30), ("c", "320612", 50), ("d", "320612", 10)],
            "320612",
            id="tie-goes-to-busiest-single-checkpoint",
        ),
        pytest.param(
            [("a", "320685", 20), ("b", "320623", 20), ("c", "320612", 5)],
            "320623",
            id="full-tie-goes-to-lowest-region-code",
        ),
        pytest.param([("a", "320685", 0), ("b", "320623", 0)], "320623", id="zero-passes"),
        pytest.param([("a", "320685", 7)], "320685", id="one-checkpoint"),
        pytest.param([], None, id="no-checkpoints"),
    ],
)
def test_busiest_checkpoint_region(checkpoints: list[tuple[str, str, int]], region: str | None) -> None:
    assert busiest_checkpoint_region(suspect(checkpoints)) == region


@pytest.mark.parametrize(
    ("entry", "region"),
    [(1, "320682"), (2, "320682"), (3, "320685"), (4, "320623"), (5, "320682")],
)
def test_sample_suspects_are_placed_in_the_documented_region(entry: int, region: str) -> None:
    event = sample_events("suspects.jsonl")[entry - 1]
    assert isinstance(event, Suspect)
    assert busiest_checkpoint_region(event) == region
    assert to_signal(event).region_code == region


CHECKPOINT_LISTS = st.lists(
    st.tuples(
        st.sampled_from(["320682", "320612", "320623", "320685"]),
        st.integers(min_value=0, max_value=60),
    ),
    min_size=1,
    max_size=8,
)


def reference_region(checkpoints: list[Checkpoint]) -> str:
    regions = {c.region_code for c in checkpoints}
    total = {r: sum(c.passes for c in checkpoints if c.region_code == r) for r in regions}
    peak = {r: max(c.passes for c in checkpoints if c.region_code == r) for r in regions}
    best_total = max(total.values())
    candidates = [r for r in regions if total[r] == best_total]
    best_peak = max(peak[r] for r in candidates)
    return min(r for r in candidates if peak[r] == best_peak)


@settings(max_examples=100, deadline=None, database=None)
@given(CHECKPOINT_LISTS.flatmap(lambda items: st.tuples(st.just(items), st.permutations(items))))
def test_busiest_checkpoint_region_does_not_depend_on_checkpoint_order(
    lists: tuple[list[tuple[str, int]], list[tuple[str, int]]],
) -> None:
    original, shuffled = lists
    first = suspect([(f"KK-{n}", region, passes) for n, (region, passes) in enumerate(original)])
    second = suspect([(f"KK-{n}", region, passes) for n, (region, passes) in enumerate(shuffled)])
    assert busiest_checkpoint_region(first) == busiest_checkpoint_region(second)
    assert busiest_checkpoint_region(first) == reference_region(first.checkpoints)


# ---------------------------------------------------------------- personal data


@pytest.mark.parametrize("complaint", COMPLAINTS, ids=[c.ticket_id for c in COMPLAINTS])
def test_summaries_and_dispatched_orders_contain_no_complainant_data(complaint: Complaint) -> None:
    name, phone = complaint.complainant.name, complaint.complainant.phone
    assert name and phone
    order = order_for(complaint)
    dispatched = order.dispatch_message().model_dump_json(by_alias=True)
    for text in (to_signal(complaint).summary, order.summary, dispatched, repr(order)):
        assert name not in text
        assert phone not in text


def test_a_complaint_summary_keeps_the_complaint_text() -> None:
    complaint = COMPLAINTS[0]
    summary = to_signal(complaint).summary
    assert summary.startswith("refusal complaint via 12328: ")
    assert complaint.summary in summary


# ---------------------------------------------------------------- the dispatched message

REQUIRED_FIELDS = {
    "work_order_id",
    "squad",
    "kind",
    "priority",
    "due_at",
    "created_at",
    "source_ids",
    "occurrences",
    "summary",
    "subject",
}


@pytest.mark.parametrize(
    "event", ALL_EVENTS, ids=[f"{type(e).__name__}-{n}" for n, e in enumerate(ALL_EVENTS)]
)
def test_dispatched_message_has_every_field_the_contract_requires(event: InboundEvent) -> None:
    order = order_for(event)
    message = json.loads(order.dispatch_message().model_dump_json(by_alias=True))
    assert message["schema"] == "workorder-dispatched/1"
    assert message.keys() >= REQUIRED_FIELDS
    assert message["work_order_id"] == order.id
    assert message["squad"] == order.unit
    assert message["kind"] in {"vehicle_alarm", "suspect", "checkin_failure", "complaint"}
    assert message["priority"] in {"P1", "P2", "P3"}
    assert message["source_ids"] == [to_signal(event).source_id]
    assert message["occurrences"] == 1
    assert message["summary"]
    assert message["subject"]["plate"] or message["subject"]["enterprise_id"] or message["subject"]["place"]
    for field in ("due_at", "created_at"):
        assert datetime.fromisoformat(message[field]).utcoffset() == timedelta(0)


def test_dispatched_message_names_the_subject() -> None:
    alarm = order_for(sample_events("vehicle-alarms.jsonl")[0])
    checkin = order_for(sample_events("checkin-failures.jsonl")[0])
    assert alarm.dispatch_message().subject.plate == "苏F21367"
    assert alarm.dispatch_message().subject.enterprise_id == "91320682MA1P7Q4R76"
    assert checkin.dispatch_message().subject.plate is None
    assert checkin.dispatch_message().subject.enterprise_id == "91320682MA1N2K3L6T"


def test_dispatched_message_round_trips_through_json() -> None:
    order = order_for(COMPLAINTS[0])
    message = order.dispatch_message()
    text = message.model_dump_json(by_alias=True)
    assert json.loads(text)["schema"] == "workorder-dispatched/1"
    assert DispatchedWorkOrder.model_validate_json(text) == message


def test_dispatched_times_are_utc_even_when_the_clock_was_not() -> None:
    china_clock = datetime(2026, 11, 22, 17, 0, tzinfo=timezone(timedelta(hours=8)))
    message = order_for(sample_events("suspects.jsonl")[0], now=china_clock).dispatch_message()
    assert message.created_at == NOW
    assert message.created_at.utcoffset() == timedelta(0)
    assert message.due_at.utcoffset() == timedelta(0)


def test_a_complaint_summary_quoting_the_complainant_is_dispatched_with_them_masked() -> None:
    document = json.loads(COMPLAINTS[0].model_dump_json(by_alias=True))
    document["complainant"] = {"name": "诸葛明月", "phone": "+86 13955554444"}
    document["summary"] = "我是诸葛明月，司机拒载，请回电 139-5555-4444 或 13955554444"
    complaint = Complaint.model_validate(document)
    order = order_for(complaint)
    dispatched = order.dispatch_message().model_dump_json(by_alias=True)
    assert order.summary == "refusal complaint via 12328: 我是***，司机拒载，请回电 *** 或 ***"
    for text in ("诸葛明月", "13955554444", "139-5555-4444"):
        assert text not in dispatched
