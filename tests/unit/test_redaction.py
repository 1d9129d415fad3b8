"""What a dead letter shows of a message that may hold personal data (processors.redaction)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from workorder_pipeline.processors.intake import DEFAULT_MAX_MESSAGE_BYTES, Rejection, decode_event
from workorder_pipeline.processors.redaction import MAX_MASKED_TEXTS, redact
from workorder_pipeline.schemas.deadletter import Redaction, RejectionReason
from workorder_pipeline.schemas.inbound import PERSONAL_FIELDS, Complainant

NAME = "欧阳娜娜"
PHONE = "13917770123"
COMPLAINT = "complaint/1"
ALARM = "vehicle-alarm/1"


def complaint(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schema": COMPLAINT,
        "ticket_id": "JS12328-2026112100999",
        "channel": "12328",
        "received_at": "2026-11-21T10:05:19+08:00",
        "due_at": "2026-11-26T17:00:00+08:00",
        "category": "detour",
        "subject": {"plate": "苏FT5062", "region_code": "320682"},
        "summary": "司机绕路",
        "complainant": {"name": NAME, "phone": PHONE},
    }
    document.update(changes)
    return document


def encode(document: object) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()


def shown_for(raw: bytes, topic_contract: str = COMPLAINT, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Any:
    """The dead letter's redaction, payload and detail for ``raw`` rejected on its topic."""
    rejection = decode_event(raw, topic_contract, max_bytes=max_bytes)
    if not isinstance(rejection, Rejection):
        rejection = Rejection(RejectionReason.unprocessable, "handling it failed: KeyError")
    return redact(raw, topic_contract, rejection.reason, rejection.detail, max_bytes)


def assert_nothing_personal(shown: Any, *texts: str) -> None:
    for text in texts or (NAME, PHONE):
        assert text not in shown.payload.decode("utf-8", "replace")
        assert text.encode() not in shown.payload
        assert text not in shown.detail


def test_every_personal_field_of_the_complaint_contract_is_masked_and_the_rest_kept() -> None:
    shown = shown_for(encode(complaint(category="no-such-category")))
    assert shown.redaction is Redaction.personal_fields
    masked = json.loads(shown.payload)
    assert masked["complainant"] == {"name": "***", "phone": "***"}
    assert {k: v for k, v in masked.items() if k != "complainant"} == {
        k: v for k, v in complaint(category="no-such-category").items() if k != "complainant"
    }
    assert "category" in shown.detail  # the operator still sees what was wrong
    assert_nothing_personal(shown)


def test_the_declared_personal_fields_are_every_field_of_the_complainant() -> None:
    assert PERSONAL_FIELDS[COMPLAINT] == {"complainant": frozenset(Complainant.model_fields)}
    assert set(Complainant.model_fields) == {"name", "phone"}


def test_nested_and_undeclared_values_inside_the_complainant_are_masked_names_and_all() -> None:
    complainant = {
        "name": {"family": "欧阳", "given": "娜娜"},
        "phone": [PHONE, {"work": "0513-87654321"}],
        "id_card": "320682199001011234",
        PHONE: "a phone as a field name",
    }
    shown = shown_for(encode(complaint(complainant=complainant)))
    masked = json.loads(shown.payload)
    assert masked["complainant"] == {"name": "***", "phone": "***", "***3": "***", "***4": "***"}
    assert_nothing_personal(shown, "欧阳", "娜娜", PHONE, "87654321", "320682199001011234")


def test_personal_texts_repeated_elsewhere_are_masked_there_too() -> None:
    summary = f"投诉人{NAME}要求回电 +86 {PHONE}，或 {PHONE[:3]}-{PHONE[3:7]}-{PHONE[7:]}"
    document = complaint(summary=summary, extra={NAME: PHONE, "n": int(PHONE)}, urgent="yes")
    document["complainant"] = {"name": NAME, "phone": f"+86 {PHONE}"}
    shown = shown_for(encode(document))
    masked = json.loads(shown.payload)
    assert masked["summary"] == "投诉人***要求回电 ***，或 ***"
    assert masked["extra"] == {"***": "***", "n": "***"}
    assert_nothing_personal(shown)


def test_a_phone_sent_as_a_number_is_masked() -> None:
    shown = shown_for(encode(complaint(complainant={"name": NAME, "phone": int(PHONE)})))
    assert json.loads(shown.payload)["complainant"]["phone"] == "***"
    assert_nothing_personal(shown)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(encode(complaint())[:-9], id="truncated"),
        pytest.param(f'{{"complainant":{{"name":"{NAME}","phone":"{PHONE}"'.encode(), id="unclosed"),
        pytest.param(f"投诉人 {NAME} 电话 {PHONE}".encode(), id="plain-text"),
        pytest.param(encode(complaint()).replace(b"\xe5", b"\xff"), id="not-utf8"),
        pytest.param(encode(complaint()).replace(NAME.encode(), NAME.encode() + b"\x00"), id="raw-nul"),
        pytest.param(encode([complaint()]), id="an-array"),
        pytest.param(encode(f"{NAME} {PHONE}"), id="a-string"),
        pytest.param(b"[" * 5000 + encode(complaint()) + b"]" * 5000, id="nested-past-the-parser"),
    ],
)
def test_a_message_on_a_complaint_topic_that_cannot_be_read_is_withheld_whole(raw: bytes) -> None:
    shown = shown_for(raw)
    assert shown.redaction is Redaction.withheld
    assert shown.payload == b""
    assert_nothing_personal(shown)


def test_a_withheld_message_keeps_a_detail_that_quotes_nothing_of_it() -> None:
    shown = shown_for(b'{"summary": "x" "y"}')
    assert shown.detail == "expected `,` or `}` at line 1 column 17"


def test_a_detail_that_quotes_the_message_is_withheld_with_the_message() -> None:
    # Duplicate keys: the detail names the key, which here is the phone.
    raw = f'{{"{PHONE}": 1, "{PHONE}": 2, "complainant": 3'.encode()
    shown = shown_for(raw)
    assert shown.redaction is Redaction.withheld
    assert_nothing_personal(shown)


def test_nul_escapes_and_duplicate_keys_are_masked_not_withheld() -> None:
    raw = (
        b'{"schema":"complaint/1","complainant":{"name":"\\u0000' + NAME.encode() + b'",'
        b'"phone":"' + PHONE.encode() + b'","phone":"' + PHONE.encode() + b'9"}}'
    )
    shown = shown_for(raw)
    assert shown.redaction is Redaction.personal_fields
    assert json.loads(shown.payload)["complainant"] == {"name": "***", "phone": "***"}
    assert_nothing_personal(shown, NAME, PHONE)


def test_a_message_over_the_size_limit_on_a_complaint_topic_is_withheld() -> None:
    raw = encode(complaint(summary="长" * 1000))
    shown = shown_for(raw, max_bytes=1024)
    assert shown.redaction is Redaction.withheld
    assert shown.detail.startswith(f"{len(raw)} bytes")


def test_huge_values_are_masked_and_the_copy_is_no_bigger_than_the_message() -> None:
    name, summary = "名" * 100_000, f"{PHONE} " * 50_000
    raw = encode(complaint(complainant={"name": name, "phone": PHONE}, summary=summary))
    shown = shown_for(raw, max_bytes=4 * 1024 * 1024)
    assert shown.redaction is Redaction.personal_fields
    assert len(shown.payload) < len(raw)
    assert_nothing_personal(shown, name[:10], PHONE)


def test_more_personal_texts_than_can_be_masked_everywhere_withholds_the_message() -> None:
    complainant = {f"f{i}": f"value-{i}" for i in range(MAX_MASKED_TEXTS + 1)}
    shown = shown_for(encode(complaint(complainant=complainant)))
    assert shown.redaction is Redaction.withheld
    assert "value-1" not in shown.detail


def test_a_complaint_on_another_topic_is_masked_by_the_contract_it_claims() -> None:
    shown = shown_for(encode(complaint()), topic_contract=ALARM)
    assert shown.redaction is Redaction.personal_fields
    assert_nothing_personal(shown)


def test_a_complainant_field_is_masked_whatever_contract_the_message_claims() -> None:
    shown = shown_for(encode(complaint(schema="no-such/9")), topic_contract=ALARM)
    assert shown.redaction is Redaction.personal_fields
    assert_nothing_personal(shown)


def test_messages_without_personal_fields_go_out_whole() -> None:
    for raw in (b"heartbeat OK", b'{"schema":"vehicle-alarm/1","plate":"ABC123"}', b"\xff\xfe"):
        shown = shown_for(raw, topic_contract=ALARM)
        assert (shown.redaction, shown.payload) == (Redaction.none, raw)


def test_an_empty_message_on_a_complaint_topic_has_nothing_to_hide() -> None:
    shown = redact(None, COMPLAINT, RejectionReason.empty_message, "a tombstone (no value)", 1024)
    assert (shown.redaction, shown.payload) == (Redaction.none, b"")


def test_a_masked_complaint_with_no_complainant_is_still_a_copy() -> None:
    document = complaint()
    del document["complainant"]
    shown = shown_for(encode(document | {"urgent": "yes"}))
    assert shown.redaction is Redaction.personal_fields
    assert json.loads(shown.payload) == document | {"urgent": "yes"}


def test_the_masked_copy_survives_base64_as_the_dead_letter_carries_it() -> None:
    shown = shown_for(encode(complaint(urgent="yes")))
    carried = base64.b64encode(shown.payload).decode()
    assert NAME not in base64.b64decode(carried).decode()
