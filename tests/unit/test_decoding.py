"""decode_event: every message becomes an event or a rejection that says precisely why."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from workorder_pipeline.processors.intake import Rejection, decode_event
from workorder_pipeline.schemas.deadletter import RejectionReason
from workorder_pipeline.schemas.inbound import CheckinFailure, Complainant, Complaint, Suspect, VehicleAlarm

SAMPLES = Path(__file__).resolve().parents[2] / "samples"

ALARM = "vehicle-alarm/1"
SUSPECT = "suspect/1"
CHECKIN = "checkin-failure/1"
COMPLAINT = "complaint/1"

NAME = "王海燕"
PHONE = "15189922043"


def sample_lines(name: str) -> list[bytes]:
    return [line for line in (SAMPLES / name).read_bytes().splitlines() if line.strip()]


def sample(name: str, index: int = 0) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(sample_lines(name)[index])
    return document


def encode(document: object) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()


def alarm(**changes: Any) -> dict[str, Any]:
    return {**sample("vehicle-alarms.jsonl"), **changes}


def without(document: dict[str, Any], field: str) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key != field}


def complaint_with_complainant(**changes: Any) -> dict[str, Any]:
    base = sample("complaints.jsonl", 5)
    assert base["complainant"] == {"name": NAME, "phone": PHONE}
    return {**base, **changes}


def rejected(result: object) -> Rejection:
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    return result


# ---------------------------------------------------------------- one case per reason


# Valid UTF-8 (with a Chinese character) up to the bad byte.
NOT_UTF8_PREFIX = '{"schema":"vehicle-alarm/1","plate":"苏'.encode()

REASON_CASES = [
    pytest.param(
        NOT_UTF8_PREFIX + b"\xff12345" + b'"}',
        ALARM,
        RejectionReason.not_utf8,
        f"invalid UTF-8 at byte {len(NOT_UTF8_PREFIX)}",
        id="not_utf8",
    ),
    pytest.param(
        b'{"schema":"vehicle-alarm/1","alarm_id":',
        ALARM,
        RejectionReason.not_json,
        "line 1 column",
        id="not_json",
    ),
    pytest.param(encode([alarm()]), ALARM, RejectionReason.not_an_object, "a JSON array", id="not_an_object"),
    pytest.param(
        encode(without(alarm(), "schema")),
        ALARM,
        RejectionReason.missing_contract,
        "no 'schema' field",
        id="missing_contract",
    ),
    pytest.param(
        encode(alarm(schema="vehicle-alarm/2")),
        ALARM,
        RejectionReason.unknown_contract,
        "'vehicle-alarm/2'",
        id="unknown_contract",
    ),
    pytest.param(
        encode(sample("complaints.jsonl")),
        ALARM,
        RejectionReason.wrong_topic,
        "a complaint/1 message on the topic for vehicle-alarm/1",
        id="wrong_topic",
    ),
    pytest.param(encode(alarm(plate="ABC123")), ALARM, RejectionReason.bad_plate, "plate: ", id="bad_plate"),
    pytest.param(
        encode(alarm(occurred_at="2026-11-21T09:12:44")),
        ALARM,
        RejectionReason.missing_offset,
        "occurred_at: Input should have timezone info",
        id="missing_offset",
    ),
    pytest.param(
        encode(alarm(level=7)),
        ALARM,
        RejectionReason.invalid_field,
        "level: Input should be less than or equal to 3",
        id="invalid_field",
    ),
    pytest.param(
        b"x" * 101,
        ALARM,
        RejectionReason.too_large,
        "101 bytes, limit 100",
        id="too_large",
    ),
    pytest.param(
        encode(alarm())[:-1] + ', "plate": "苏F99999"}'.encode(),
        ALARM,
        RejectionReason.duplicate_key,
        "key 'plate' appears more than once",
        id="duplicate_key",
    ),
    pytest.param(None, ALARM, RejectionReason.empty_message, "tombstone", id="empty_message"),
    pytest.param(
        encode(alarm(summary_note="a\x00b")),
        ALARM,
        RejectionReason.invalid_character,
        "U+0000 in summary_note",
        id="invalid_character",
    ),
    pytest.param(
        encode(alarm(x=[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]])),
        ALARM,
        RejectionReason.too_complex,
        "nested deeper than 16",
        id="too_complex",
    ),
]
#: Reasons decided after decoding: with the clock (tests/unit/test_intake_service.py), or
#: when storing fails on one message alone (tests/integration/test_failure_isolation.py).
DECIDED_LATER = {RejectionReason.implausible_time.value, RejectionReason.unprocessable.value}


def test_every_rejection_reason_has_a_case() -> None:
    covered = {case.id for case in REASON_CASES}
    assert covered | DECIDED_LATER == {reason.value for reason in RejectionReason}


@pytest.mark.parametrize(("raw", "contract", "reason", "detail"), REASON_CASES)
def test_rejection_names_the_reason_and_a_helpful_detail(
    raw: bytes | None, contract: str, reason: RejectionReason, detail: str
) -> None:
    rejection = rejected(decode_event(raw, contract, max_bytes=100 if reason == "too_large" else 1 << 20))
    assert rejection.reason == reason
    assert detail in rejection.detail


# ---------------------------------------------------------------- more rejections


@pytest.mark.parametrize(
    ("raw", "contract", "reason", "detail"),
    [
        pytest.param(b"", ALARM, RejectionReason.empty_message, "no bytes", id="empty-message"),
        pytest.param(
            b" ", ALARM, RejectionReason.not_json, "EOF while parsing a value at line 1", id="blank"
        ),
        pytest.param(b'{"a": [1, 2', ALARM, RejectionReason.not_json, "line 1 column 11", id="cut-short"),
        pytest.param(b'"\\ud800"', ALARM, RejectionReason.not_json, "hex escape", id="lone-surrogate"),
        pytest.param(
            b"[" * 300 + b"]" * 300, ALARM, RejectionReason.too_complex, "nested too deeply", id="deep"
        ),
        pytest.param(b"null", ALARM, RejectionReason.not_an_object, "a JSON null", id="json-null"),
        pytest.param(b'"text"', ALARM, RejectionReason.not_an_object, "a JSON str", id="json-string"),
        pytest.param(b"42", ALARM, RejectionReason.not_an_object, "a JSON number", id="json-number"),
        pytest.param(
            encode(alarm(schema=None)), ALARM, RejectionReason.missing_contract, "'schema'", id="null-schema"
        ),
        pytest.param(
            encode(alarm(schema=1)), ALARM, RejectionReason.unknown_contract, "'1'", id="numeric-schema"
        ),
        pytest.param(
            encode(alarm()),
            SUSPECT,
            RejectionReason.wrong_topic,
            "a vehicle-alarm/1 message",
            id="alarm-on-suspects",
        ),
        pytest.param(
            encode({**sample("suspects.jsonl"), "plate": "苏F1234O"}),
            SUSPECT,
            RejectionReason.bad_plate,
            "plate: ",
            id="suspect-plate-with-letter-O",
        ),
        pytest.param(
            encode({**sample("checkin-failures.jsonl"), "vehicles_moving": ["苏F0J672", "not a plate"]}),
            CHECKIN,
            RejectionReason.bad_plate,
            "vehicles_moving.1: ",
            id="checkin-bad-moving-vehicle",
        ),
        pytest.param(
            encode({**sample("checkin-failures.jsonl", 1), "responded_at": "2026-11-20T15:23:41"}),
            CHECKIN,
            RejectionReason.missing_offset,
            "responded_at",
            id="checkin-response-without-offset",
        ),
        pytest.param(
            encode({**sample("complaints.jsonl"), "subject": {"plate": "F12345"}}),
            COMPLAINT,
            RejectionReason.bad_plate,
            "subject.plate: ",
            id="complaint-subject-bad-plate",
        ),
        pytest.param(
            encode({**sample("complaints.jsonl"), "due_at": "2026-11-25 17:00:00"}),
            COMPLAINT,
            RejectionReason.missing_offset,
            "due_at: ",
            id="complaint-due-without-offset",
        ),
        pytest.param(
            encode(without(alarm(), "alarm_id")),
            ALARM,
            RejectionReason.invalid_field,
            "alarm_id: Field required",
            id="missing-required-field",
        ),
        pytest.param(
            encode(alarm(alarm_type="harsh_braking")),
            ALARM,
            RejectionReason.invalid_field,
            "alarm_type: Input should be",
            id="unknown-enum-value",
        ),
        pytest.param(
            encode(alarm(location={"lat": 32.4, "lon": 120.6, "region_code": "3206"})),
            ALARM,
            RejectionReason.invalid_field,
            "location.region_code",
            id="short-region-code",
        ),
        pytest.param(
            encode(alarm(enterprise={"id": "91320682", "name": "x"})),
            ALARM,
            RejectionReason.invalid_field,
            "enterprise.id",
            id="short-enterprise-id",
        ),
    ],
)
def test_more_malformed_messages_are_rejected_with_the_right_reason(
    raw: bytes, contract: str, reason: RejectionReason, detail: str
) -> None:
    rejection = rejected(decode_event(raw, contract))
    assert rejection.reason == reason
    assert detail in rejection.detail


@pytest.mark.parametrize("schema", [["vehicle-alarm/1"], {"name": "vehicle-alarm/1"}], ids=["list", "object"])
def test_a_schema_field_that_is_a_list_or_object_is_an_unknown_contract(schema: object) -> None:
    rejection = rejected(decode_event(encode(alarm(schema=schema)), ALARM))
    assert rejection.reason == RejectionReason.unknown_contract


def test_a_message_exactly_at_the_size_limit_is_not_too_large() -> None:
    raw = encode(alarm())
    assert isinstance(decode_event(raw, ALARM, max_bytes=len(raw)), VehicleAlarm)
    assert rejected(decode_event(raw, ALARM, max_bytes=len(raw) - 1)).reason == RejectionReason.too_large


def test_a_field_rejection_lists_every_broken_field() -> None:
    rejection = rejected(decode_event(encode(alarm(level=0, plate_color="purple")), ALARM))
    assert rejection.reason == RejectionReason.invalid_field
    assert "level" in rejection.detail
    assert "plate_color" in rejection.detail


# ---------------------------------------------------------------- the samples


@pytest.mark.parametrize(
    ("file", "contract", "model"),
    [
        pytest.param("vehicle-alarms.jsonl", ALARM, VehicleAlarm, id="vehicle-alarms"),
        pytest.param("suspects.jsonl", SUSPECT, Suspect, id="suspects"),
        pytest.param("checkin-failures.jsonl", CHECKIN, CheckinFailure, id="checkin-failures"),
        pytest.param("complaints.jsonl", COMPLAINT, Complaint, id="complaints"),
    ],
)
def test_every_sample_line_decodes(file: str, contract: str, model: type[object]) -> None:
    lines = sample_lines(file)
    assert lines
    for number, line in enumerate(lines, start=1):
        event = decode_event(line, contract)
        assert isinstance(event, model), f"{file}:{number}: {event!r}"


INVALID_SAMPLE_REASONS = [
    RejectionReason.missing_offset,
    RejectionReason.bad_plate,
    RejectionReason.wrong_topic,
    RejectionReason.unknown_contract,
    RejectionReason.invalid_field,
    RejectionReason.invalid_field,
    RejectionReason.invalid_field,
    RejectionReason.not_an_object,
]


@pytest.mark.parametrize(
    ("line_number", "reason"),
    [pytest.param(n, r, id=f"invalid.jsonl:{n}-{r.value}") for n, r in enumerate(INVALID_SAMPLE_REASONS, 1)],
)
def test_every_invalid_sample_line_is_rejected_with_its_documented_reason(
    line_number: int, reason: RejectionReason
) -> None:
    lines = sample_lines("invalid.jsonl")
    assert len(lines) == len(INVALID_SAMPLE_REASONS)
    rejection = rejected(decode_event(lines[line_number - 1], ALARM))
    assert rejection.reason == reason
    assert rejection.detail


def test_every_not_json_sample_line_is_rejected_as_not_json() -> None:
    lines = sample_lines("not-json.txt")
    assert len(lines) == 2
    for line in lines:
        assert rejected(decode_event(line, ALARM)).reason == RejectionReason.not_json


# ---------------------------------------------------------------- extra fields


def test_unknown_extra_fields_are_kept() -> None:
    line = next(line for line in sample_lines("vehicle-alarms.jsonl") if b"device_sn" in line)
    event = decode_event(line, ALARM)
    assert isinstance(event, VehicleAlarm)
    dumped = event.model_dump(mode="json", by_alias=True)
    assert dumped["device_sn"] == "JT808-RG-00A3F7"
    assert dumped["schema"] == ALARM


def test_unknown_nested_extra_fields_are_kept() -> None:
    document = alarm(
        location={**alarm()["location"], "altitude_m": 12.5},
        enterprise={**alarm()["enterprise"], "license_no": "苏交运管 320682001234"},
        platform_meta={"version": "2.3"},
    )
    event = decode_event(encode(document), ALARM)
    assert isinstance(event, VehicleAlarm)
    dumped = event.model_dump(mode="json", by_alias=True)
    assert dumped["location"]["altitude_m"] == 12.5
    assert dumped["enterprise"]["license_no"] == "苏交运管 320682001234"
    assert dumped["platform_meta"] == {"version": "2.3"}


def test_decoded_plates_and_times_are_normalized() -> None:
    lines = sample_lines("vehicle-alarms.jsonl")
    full_width = decode_event(lines[2], ALARM)
    lower_case = decode_event(lines[6], ALARM)
    in_utc = decode_event(lines[4], ALARM)
    assert isinstance(full_width, VehicleAlarm)
    assert isinstance(lower_case, VehicleAlarm)
    assert isinstance(in_utc, VehicleAlarm)
    assert full_width.plate == "苏F3T827"
    assert lower_case.plate == "苏F6B789"
    assert in_utc.occurred_at.isoformat() == "2026-11-20T06:15:32+00:00"


# ---------------------------------------------------------------- personal data


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(complaint_with_complainant(channel="fax"), id="bad-channel"),
        pytest.param(complaint_with_complainant(received_at="2026-11-22T16:02:44"), id="missing-offset"),
        pytest.param(complaint_with_complainant(subject={"plate": NAME + PHONE}), id="bad-plate"),
        pytest.param(
            complaint_with_complainant(complainant={"name": NAME, "phone": 15189922043}), id="phone-number"
        ),
        pytest.param(
            complaint_with_complainant(complainant={"name": NAME * 100, "phone": PHONE}), id="name-too-long"
        ),
        pytest.param(
            complaint_with_complainant(complainant={"name": [NAME], "phone": PHONE * 10}),
            id="name-list-phone-long",
        ),
        pytest.param(complaint_with_complainant(complainant=f"{NAME} {PHONE}"), id="complainant-as-text"),
        pytest.param(
            complaint_with_complainant(urgent={"name": NAME, "phone": PHONE}), id="pii-in-other-field"
        ),
        pytest.param({**complaint_with_complainant(), "schema": "vehicle-alarm/1"}, id="wrong-topic"),
    ],
)
def test_rejection_details_never_contain_the_complainants_name_or_phone(document: dict[str, Any]) -> None:
    expected = ALARM if document["schema"] == ALARM else COMPLAINT
    rejection = rejected(decode_event(encode(document), expected))
    assert NAME not in rejection.detail
    assert PHONE not in rejection.detail
    assert NAME not in repr(rejection)
    assert PHONE not in repr(rejection)


def test_complainant_repr_masks_name_and_phone() -> None:
    complainant = Complainant(name=NAME, phone=PHONE)
    for text in (repr(complainant), str(complainant), f"{complainant!r}"):
        assert NAME not in text
        assert PHONE not in text
        assert "***" in text


def test_a_decoded_complaints_repr_masks_the_complainant_but_keeps_the_data_for_the_callback() -> None:
    event = decode_event(encode(complaint_with_complainant()), COMPLAINT)
    assert isinstance(event, Complaint)
    for text in (repr(event), str(event)):
        assert NAME not in text
        assert PHONE not in text
    assert event.complainant.name == NAME
    assert event.complainant.phone == PHONE


def test_a_complainant_without_data_is_shown_as_empty() -> None:
    assert repr(Complainant()) == "Complainant(name=None, phone=None)"


def test_an_alarm_without_a_plate_is_an_invalid_field_not_a_bad_plate() -> None:
    samples = Path(__file__).resolve().parents[2] / "samples"
    line = (samples / "vehicle-alarms.jsonl").read_text(encoding="utf-8").splitlines()[0]
    document = json.loads(line)
    del document["plate"]
    rejection = decode_event(json.dumps(document).encode(), "vehicle-alarm/1")
    assert isinstance(rejection, Rejection)
    assert rejection.reason is RejectionReason.invalid_field
    assert "plate: Field required" in rejection.detail


def test_a_full_width_region_code_is_read_as_its_ascii_digits() -> None:
    """A platform's full-width digits (３２０６８２) are the same region, routed and counted
    as 320682; digits of another script are not a region code: a clear field error."""
    base = alarm()
    full_width = decode_event(
        encode({**base, "location": {**base["location"], "region_code": "３２０６８２"}}), ALARM
    )
    assert isinstance(full_width, VehicleAlarm) and full_width.location.region_code == "320682"
    for code in ("٣٢٠٦٨٢", "32068", "3206820", "32068a", "320682\n", "３２０６８"):
        document = {**base, "location": {**base["location"], "region_code": code}}
        rejection = rejected(decode_event(encode(document), ALARM))
        assert rejection.reason is RejectionReason.invalid_field
        assert "location.region_code" in rejection.detail
