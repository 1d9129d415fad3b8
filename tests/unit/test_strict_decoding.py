"""Decoding is strict and bounded: hostile values end as the named dead-letter reason, type
swaps are refused rather than converted, and the valid samples decode as they always did."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jiter
import pytest
from pydantic import BaseModel

from workorder_pipeline.processors.intake import (
    INT64_MAX,
    INT64_MIN,
    MAX_DEPTH,
    MAX_OBJECT_FIELDS,
    Rejection,
    decode_command,
    decode_event,
)
from workorder_pipeline.schemas.deadletter import RejectionReason
from workorder_pipeline.schemas.inbound import CONTRACTS, Complaint, VehicleAlarm

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
ALARM = "vehicle-alarm/1"
FILES = {
    "vehicle-alarms.jsonl": "vehicle-alarm/1",
    "suspects.jsonl": "suspect/1",
    "checkin-failures.jsonl": "checkin-failure/1",
    "complaints.jsonl": "complaint/1",
}


def lines(name: str) -> list[bytes]:
    return [line for line in (SAMPLES / name).read_bytes().splitlines() if line.strip()]


def sample(name: str, index: int = 0) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(lines(name)[index])
    return document


def alarm(**changes: Any) -> dict[str, Any]:
    return {**sample("vehicle-alarms.jsonl"), **changes}


def complaint(**changes: Any) -> dict[str, Any]:
    return {**sample("complaints.jsonl"), **changes}


def command(**changes: Any) -> dict[str, Any]:
    return {
        "schema": "workorder-command/1",
        "command_id": "c-1",
        "work_order_id": "WO-1",
        "action": "close",
        "actor": {"unit": "squad-1", "officer_ids": ["JS0682-0117", "JS0682-0342"]},
        "at": "2026-11-21T09:12:44+08:00",
        "disposition": "case_filed",
        **changes,
    }


def encode(document: object) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()


def reason_of(outcome: object) -> RejectionReason:
    assert isinstance(outcome, Rejection), f"expected a rejection, got {outcome!r}"
    assert outcome.detail
    return outcome.reason


def nested(depth: int) -> object:
    """A value that, as a field of the message (depth 1), sits ``depth`` levels deep."""
    value: object = []
    for _ in range(depth - 2):
        value = [value]
    return value


# ---------------------------------------------------------------- tombstones and empty values


@pytest.mark.parametrize("raw", [None, b""], ids=["tombstone", "no-bytes"])
def test_a_tombstone_or_an_empty_value_is_an_empty_message(raw: bytes | None) -> None:
    assert reason_of(decode_event(raw, ALARM)) is RejectionReason.empty_message
    assert reason_of(decode_command(raw)) is RejectionReason.empty_message


# ---------------------------------------------------------------- U+0000 anywhere


NUL = "\x00"
NUL_CASES = [
    pytest.param(ALARM, alarm(alarm_id=f"A{NUL}1"), id="alarm-id"),
    pytest.param(ALARM, alarm(enterprise={"id": "91320682MA1NXXXX1A", "name": f"x{NUL}"}), id="name"),
    pytest.param(ALARM, alarm(evidence=[f"https://e.example/{NUL}.jpg"]), id="evidence"),
    pytest.param(ALARM, alarm(device_sn=f"{NUL}"), id="unknown-field-value"),
    pytest.param(ALARM, alarm(**{f"device{NUL}sn": "x"}), id="unknown-field-key"),
    pytest.param(ALARM, alarm(meta={"a": [{f"k{NUL}": 1}]}), id="nested-unknown-key"),
    pytest.param("complaint/1", complaint(summary=f"refused {NUL} to stop"), id="summary"),
]


@pytest.mark.parametrize(("contract", "document"), NUL_CASES)
def test_u0000_anywhere_is_an_invalid_character(contract: str, document: dict[str, Any]) -> None:
    assert reason_of(decode_event(encode(document), contract)) is RejectionReason.invalid_character


@pytest.mark.parametrize(
    "document",
    [
        command(note=f"done{NUL}"),
        command(command_id=f"c{NUL}"),
        command(actor={"unit": "squad-1", "officer_ids": [f"JS{NUL}"]}),
    ],
    ids=["note", "command-id", "officer"],
)
def test_u0000_in_a_command_is_an_invalid_character(document: dict[str, Any]) -> None:
    assert reason_of(decode_command(encode(document))) is RejectionReason.invalid_character


def test_the_rejection_says_where_the_u0000_is_without_the_value() -> None:
    outcome = decode_event(encode(alarm(meta={"a": [{"k": f"secret{NUL}"}]})), ALARM)
    assert isinstance(outcome, Rejection)
    assert "meta.a[0].k" in outcome.detail
    assert "secret" not in outcome.detail


# ---------------------------------------------------------------- integers beyond 64 bits


@pytest.mark.parametrize("value", [10**20, INT64_MAX + 1, INT64_MIN - 1, -(10**30)])
def test_an_integer_outside_64_bits_is_an_invalid_field_even_in_an_unknown_field(value: int) -> None:
    raw = encode(alarm())[:-1] + f', "x": {value}}}'.encode()
    assert reason_of(decode_event(raw, ALARM)) is RejectionReason.invalid_field
    nested_raw = encode(alarm())[:-1] + f', "x": {{"y": [{value}]}}}}'.encode()
    assert reason_of(decode_event(nested_raw, ALARM)) is RejectionReason.invalid_field
    assert reason_of(decode_command(encode(command())[:-1] + f', "x": {value}}}'.encode())) is (
        RejectionReason.invalid_field
    )


@pytest.mark.parametrize("value", [INT64_MAX, INT64_MIN])
def test_the_64_bit_limits_themselves_are_kept(value: int) -> None:
    event = decode_event(encode(alarm(x=value)), ALARM)
    assert isinstance(event, VehicleAlarm)
    assert event.model_dump(mode="json")["x"] == value


@pytest.mark.parametrize("number", ["1e999", "-1e999", "NaN", "Infinity"])
def test_a_number_no_column_can_store_is_an_invalid_field(number: str) -> None:
    raw = encode(alarm())[:-1] + f', "x": {number}}}'.encode()
    assert reason_of(decode_event(raw, ALARM)) in (RejectionReason.invalid_field, RejectionReason.not_json)


# ---------------------------------------------------------------- depth and field count


def test_nesting_up_to_the_limit_is_kept_and_one_more_level_is_too_complex() -> None:
    assert isinstance(decode_event(encode(alarm(x=nested(MAX_DEPTH))), ALARM), VehicleAlarm)
    assert reason_of(decode_event(encode(alarm(x=nested(MAX_DEPTH + 1))), ALARM)) is (
        RejectionReason.too_complex
    )


def test_an_object_with_more_fields_than_the_limit_is_too_complex() -> None:
    at_limit = {f"k{n}": n for n in range(MAX_OBJECT_FIELDS)}
    assert isinstance(decode_event(encode(alarm(x=at_limit)), ALARM), VehicleAlarm)
    over = {f"k{n}": n for n in range(MAX_OBJECT_FIELDS + 1)}
    assert reason_of(decode_event(encode(alarm(x=over)), ALARM)) is RejectionReason.too_complex
    many_top_level = alarm(**{f"k{n}": n for n in range(MAX_OBJECT_FIELDS)})
    assert reason_of(decode_event(encode(many_top_level), ALARM)) is RejectionReason.too_complex


# ---------------------------------------------------------------- no silent conversion


TYPE_SWAPS = [
    pytest.param(ALARM, alarm(level=True), id="level-true"),
    pytest.param(ALARM, alarm(level="3"), id="level-text"),
    pytest.param(ALARM, alarm(level=3.0), id="level-float"),
    pytest.param(ALARM, alarm(speed_kmh="98"), id="speed-text"),
    pytest.param(ALARM, alarm(speed_kmh=True), id="speed-true"),
    pytest.param(ALARM, alarm(alarm_id=123), id="id-number"),
    pytest.param(ALARM, alarm(plate=12345), id="plate-number"),
    pytest.param(
        ALARM, alarm(location={"lat": "32.4", "lon": 120.6, "region_code": "320682"}), id="lat-text"
    ),
    pytest.param(
        ALARM, alarm(location={"lat": 32.4, "lon": 120.6, "region_code": 320682}), id="region-number"
    ),
    pytest.param("complaint/1", complaint(urgent="yes"), id="urgent-yes"),
    pytest.param("complaint/1", complaint(urgent="true"), id="urgent-text"),
    pytest.param("complaint/1", complaint(urgent=1), id="urgent-one"),
    pytest.param("complaint/1", complaint(channel=12345), id="channel-number"),
    pytest.param("suspect/1", {**sample("suspects.jsonl"), "window_days": "7"}, id="window-text"),
    pytest.param("suspect/1", {**sample("suspects.jsonl"), "score": "0.9"}, id="score-text"),
    pytest.param("suspect/1", {**sample("suspects.jsonl"), "list_date": 20261120}, id="date-number"),
    pytest.param(ALARM, alarm(occurred_at=1732600000), id="time-number"),
]


@pytest.mark.parametrize(("contract", "document"), TYPE_SWAPS)
def test_a_value_of_the_wrong_json_type_is_refused_not_converted(
    contract: str, document: dict[str, Any]
) -> None:
    assert reason_of(decode_event(encode(document), contract)) in (
        RejectionReason.invalid_field,
        RejectionReason.bad_plate,
    )


@pytest.mark.parametrize(
    "document",
    [
        command(callback={"result": "unreachable", "at": "2026-11-21T09:12:44+08:00", "attempts": "3"}),
        command(actor={"unit": "squad-1", "officer_ids": [117, 342]}),
        command(action=1),
    ],
    ids=["attempts-text", "officers-numbers", "action-number"],
)
def test_a_command_value_of_the_wrong_json_type_is_refused(document: dict[str, Any]) -> None:
    assert reason_of(decode_command(encode(document))) is RejectionReason.invalid_field


def test_an_urgent_complaint_says_so_with_a_json_boolean() -> None:
    event = decode_event(encode(complaint(urgent=True)), "complaint/1")
    assert isinstance(event, Complaint)
    assert event.urgent is True


def test_an_integer_is_still_a_number_where_the_contract_says_number() -> None:
    event = decode_event(encode(alarm(speed_kmh=98, duration_s=120)), ALARM)
    assert isinstance(event, VehicleAlarm)
    assert (event.speed_kmh, event.duration_s) == (98.0, 120.0)


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2026-11-20T14:15:32+08:00", "2026-11-20T06:15:32+00:00"),
        ("2026-11-20T06:15:32Z", "2026-11-20T06:15:32+00:00"),
        ("2026-11-20T14:15:32.250+08:00", "2026-11-20T06:15:32.250000+00:00"),
        ("2026-11-20 14:15:32+08:00", "2026-11-20T06:15:32+00:00"),
    ],
)
def test_times_in_iso_8601_text_still_parse(text: str, iso: str) -> None:
    event = decode_event(encode(alarm(occurred_at=text)), ALARM)
    assert isinstance(event, VehicleAlarm)
    assert event.occurred_at.isoformat() == iso


# ---------------------------------------------------------------- the samples, as before


def lenient(line: bytes, model: type[BaseModel]) -> BaseModel:
    """How every sample was decoded before strict mode: lax validation of the parsed JSON."""
    return model.model_validate(jiter.from_json(line))


@pytest.mark.parametrize("file", sorted(FILES))
def test_every_valid_sample_decodes_exactly_as_before(file: str) -> None:
    model = CONTRACTS[FILES[file]]
    for number, line in enumerate(lines(file), start=1):
        strict = decode_event(line, FILES[file])
        assert isinstance(strict, model), f"{file}:{number}: {strict!r}"
        before = lenient(line, model)
        assert strict == before, f"{file}:{number}"
        assert strict.model_dump(mode="json", by_alias=True) == before.model_dump(mode="json", by_alias=True)
