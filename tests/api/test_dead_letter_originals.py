"""A masked dead letter's original: the command center reads it, every read recorded; nobody
else learns whether it exists."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from tests.api.conftest import POLICY, REFERENCE, TOPICS, ApiWorld
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.schemas.deadletter import DeadLetter, Redaction
from workorder_pipeline.services.intake import InboundMessage, Intake

NAME, PHONE = "司马相如", "13811112222"


def rejected_complaint(api: ApiWorld, offset: int) -> tuple[DeadLetter, bytes]:
    """A complaint the intake rejects (urgent is not a boolean), dead-lettered masked."""
    value = json.dumps(
        {
            "schema": "complaint/1",
            "ticket_id": f"JS12328-DL-{offset}",
            "urgent": "yes",
            "complainant": {"name": NAME, "phone": PHONE},
        },
        ensure_ascii=False,
    ).encode()
    message = InboundMessage(TOPICS.complaints, 2, offset, b"JS12328-DL", value, 1_795_000_000_000 + offset)
    intake = Intake(compile_policy(POLICY), api.repository, TOPICS.inbound(), reference=lambda: REFERENCE)
    (letter,) = intake.handle([message], datetime.now(UTC)).dead_letters
    assert letter.redaction is Redaction.personal_fields and letter.original_id is not None
    return letter, value


def test_the_command_center_reads_the_original_and_the_read_is_recorded(api: ApiWorld) -> None:
    letter, value = rejected_complaint(api, 900_001)
    read = api.client.get(
        f"/dead-letters/{letter.original_id}/original", headers=api.headers("command_center")
    )
    assert read.status_code == 200, read.text
    body = read.json()
    assert base64.b64decode(body["value"]) == value
    assert base64.b64decode(body["key"]) == b"JS12328-DL"
    assert (body["topic"], body["partition"], body["offset"]) == (TOPICS.complaints, 2, 900_001)
    assert body["reason"] == letter.reason.value
    listed = api.client.get("/personal-data-reads", headers=api.headers("command_center")).json()
    newest = listed[0]
    assert (newest["dead_letter_id"], newest["work_order_id"]) == (letter.original_id, None)
    assert (newest["reader"], newest["role"]) == ("duty officer", "command_center")
    assert newest["route"] == "GET /dead-letters/{dead_letter_id}/original"


def test_anyone_else_gets_the_answer_of_an_id_that_does_not_exist(api: ApiWorld) -> None:
    letter, _ = rejected_complaint(api, 900_002)
    missing = api.client.get("/dead-letters/dl-0000/original", headers=api.headers("command_center"))
    assert missing.status_code == 404
    for who in ("squad-1", "supervisor"):
        refused = api.client.get(f"/dead-letters/{letter.original_id}/original", headers=api.headers(who))
        assert (refused.status_code, refused.json()) == (
            404,
            {"detail": "没有这条死信原件，或已过保留期，或无权查看"},
        )
        assert NAME not in refused.text and PHONE not in refused.text
    reads = api.client.get("/personal-data-reads", headers=api.headers("command_center")).json()
    assert all(read["dead_letter_id"] != letter.original_id for read in reads)


def test_without_a_token_the_original_is_not_served(api: ApiWorld) -> None:
    letter, _ = rejected_complaint(api, 900_003)
    assert api.client.get(f"/dead-letters/{letter.original_id}/original").status_code == 401
