"""Hostile input: whatever the bytes, decoding ends in an event or a rejection with a reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fakes import InMemoryIntakeStore
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.processors.intake import Rejection, decode_command, decode_event
from workorder_pipeline.schemas.deadletter import RejectionReason
from workorder_pipeline.schemas.inbound import CONTRACTS, VehicleAlarm

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = json.loads((ROOT / "samples" / "vehicle-alarms.jsonl").read_text(encoding="utf-8").splitlines()[0])
FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)
#: JSON values every database stores as they are: no U+0000, integers within 64 bits.
storable_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40)
storable_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | storable_text,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(storable_text.map(lambda t: t[:12]), children, max_size=5)
    ),
    max_leaves=25,
)


@FUZZ
@given(st.binary(max_size=2048), st.sampled_from(sorted(CONTRACTS)))
def test_arbitrary_bytes_never_raise(raw: bytes, contract: str) -> None:
    outcome = decode_event(raw, contract)
    assert isinstance(outcome, Rejection | CONTRACTS[contract])
    if isinstance(outcome, Rejection):
        assert outcome.reason in RejectionReason
        assert outcome.detail


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_as_commands_never_raise(raw: bytes) -> None:
    outcome = decode_command(raw)
    assert isinstance(outcome, Rejection) or outcome.command_id


@FUZZ
@given(st.sampled_from(sorted(SAMPLE)), json_values)
def test_a_sample_alarm_with_any_field_replaced_never_raises(field: str, value: Any) -> None:
    document = {**SAMPLE, field: value}
    outcome = decode_event(json.dumps(document).encode(), "vehicle-alarm/1")
    if isinstance(outcome, Rejection):
        assert outcome.reason in RejectionReason
    else:
        assert isinstance(outcome, VehicleAlarm)


@FUZZ
@given(st.dictionaries(storable_text.map(lambda t: t[:12]), storable_values, max_size=8))
def test_unknown_extra_fields_that_any_database_stores_are_kept(extra: dict[str, Any]) -> None:
    document = {**extra, **SAMPLE}  # the contract's own fields win
    outcome = decode_event(json.dumps(document).encode(), "vehicle-alarm/1")
    assert isinstance(outcome, VehicleAlarm), outcome
    dumped = outcome.model_dump(mode="json", by_alias=True)
    for key in extra:
        assert key in dumped


def test_deep_nesting_huge_numbers_and_infinities_are_rejected_not_crashing() -> None:
    deep = b'{"schema":"vehicle-alarm/1","x":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    huge = json.dumps({**SAMPLE, "level": 10**5000}).encode() if False else None
    assert huge is None  # json.dumps refuses such ints itself: build the text by hand
    huge_text = json.dumps(SAMPLE)[:-1] + ', "speed_kmh": ' + "9" * 5000 + "}"
    infinite = json.dumps(SAMPLE)[:-1] + ', "speed_kmh": 1e999}'
    for raw in (deep, huge_text.encode(), infinite.encode()):
        outcome = decode_event(raw, "vehicle-alarm/1")
        assert isinstance(outcome, Rejection), raw[:80]


def test_a_byte_order_mark_or_utf16_is_not_utf8_json() -> None:
    text = json.dumps(SAMPLE, ensure_ascii=False)
    for raw in (b"\xef\xbb\xbf" + text.encode(), text.encode("utf-16")):
        outcome = decode_event(raw, "vehicle-alarm/1")
        assert isinstance(outcome, Rejection)
        assert outcome.reason in (RejectionReason.not_json, RejectionReason.not_utf8)


def test_event_times_beyond_the_clock_skew_are_dead_lettered() -> None:
    from workorder_pipeline.services.intake import InboundMessage, Intake
    from workorder_pipeline.services.policy_files import load_policy

    store = InMemoryIntakeStore()
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    intake = Intake(compile_policy(load_policy(ROOT / "policy")), store, {"alarms": "vehicle-alarm/1"})
    messages = []
    # Old events are not bad input (tests/unit/test_event_times.py); clock errors are.
    for offset, when in enumerate((now + timedelta(hours=2), now + timedelta(days=3650))):
        document = {**SAMPLE, "alarm_id": f"T{offset}", "occurred_at": when.isoformat()}
        messages.append(InboundMessage("alarms", 0, offset, None, json.dumps(document).encode()))
    result = intake.handle(messages, now)
    assert [letter.reason for letter in result.dead_letters] == [RejectionReason.implausible_time] * 2
    ahead = "more than 1:00:00 ahead of 2026-11-23 20:00:00+08:00"
    assert all(ahead in letter.detail for letter in result.dead_letters)
    assert sum(result.received.values()) == 0
    assert store.orders == {} and store.history == []


def test_a_time_with_no_utc_equivalent_is_rejected_not_crashing() -> None:
    document = {**SAMPLE, "occurred_at": "0001-01-01T00:00:00+08:00"}
    outcome = decode_event(json.dumps(document).encode(), "vehicle-alarm/1")
    assert isinstance(outcome, Rejection)
    assert outcome.reason is RejectionReason.invalid_field
    assert "out of range" in outcome.detail
