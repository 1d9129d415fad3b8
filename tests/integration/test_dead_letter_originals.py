"""Originals of masked dead letters on both databases: kept in the batch's transaction (no
dead letter without its original), once per message, deleted after their retention."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from workorder_pipeline.config.settings import Settings, Topics
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.schemas.deadletter import KeptOriginal, Redaction, RejectionReason
from workorder_pipeline.schemas.senders import SenderKeys
from workorder_pipeline.services.commands import CommandHandler
from workorder_pipeline.services.dead_letters import Retention
from workorder_pipeline.services.escalations import Escalations
from workorder_pipeline.services.intake import InboundMessage, Intake
from workorder_pipeline.services.policy_files import load_policy, load_reference
from workorder_pipeline.storage.dead_letters import DeadLetterOriginals
from workorder_pipeline.storage.repository import WorkOrderRepository
from workorder_pipeline.streams.background import Background
from workorder_pipeline.streams.outputs import Outputs

ROOT = Path(__file__).resolve().parents[2]
POLICY = load_policy(ROOT / "policy")
REFERENCE = load_reference(ROOT / "policy")
TOPICS = Topics()
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
NAME, PHONE = "上官婉儿", "13700001111"
BAD_COMPLAINT = json.dumps(
    {
        "schema": "complaint/1",
        "ticket_id": "T-1",
        "urgent": "yes",
        "complainant": {"name": NAME, "phone": PHONE},
    },
    ensure_ascii=False,
).encode()


def alarm_line() -> bytes:
    line = (ROOT / "samples" / "vehicle-alarms.jsonl").read_bytes().splitlines()[0]
    return line


def batch() -> list[InboundMessage]:
    return [
        InboundMessage(TOPICS.vehicle_alarms, 0, 10, b"k", alarm_line(), 1_795_000_000_000),
        InboundMessage(TOPICS.complaints, 1, 20, b"T-1", BAD_COMPLAINT, 1_795_000_000_001),
    ]


def intake(engine: Engine) -> Intake:
    return Intake(
        compile_policy(POLICY), WorkOrderRepository(engine), TOPICS.inbound(), reference=lambda: REFERENCE
    )


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def rename(engine: Engine, old: str, new: str) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE {old} RENAME TO {new}"))


def test_a_batch_whose_original_cannot_be_kept_stores_nothing_and_publishes_no_dead_letter(
    engine: Engine,
) -> None:
    rename(engine, "dead_letter_original", "dead_letter_original_away")
    try:
        with pytest.raises(sa.exc.DBAPIError):
            intake(engine).handle(batch(), NOW)
        assert count(engine, "work_order") == 0  # the batch's order went with it: it is retried whole
    finally:
        rename(engine, "dead_letter_original_away", "dead_letter_original")
    result = intake(engine).handle(batch(), NOW)
    (letter,) = result.dead_letters
    assert letter.redaction is Redaction.personal_fields and letter.original_id is not None
    kept = DeadLetterOriginals(engine).get(letter.original_id)
    assert kept is not None and kept.value == BAD_COMPLAINT and kept.key == b"T-1"
    assert count(engine, "work_order") == 1


def test_a_redelivered_batch_keeps_its_original_once_under_the_same_id(engine: Engine) -> None:
    first = intake(engine).handle(batch(), NOW)
    again = intake(engine).handle(batch(), NOW + timedelta(minutes=5))
    assert first.dead_letters[0].original_id == again.dead_letters[0].original_id
    assert count(engine, "dead_letter_original") == 1


def test_an_unprocessable_complaint_keeps_its_original_before_its_dead_letter_goes_out(
    engine: Engine,
) -> None:
    message = InboundMessage(TOPICS.complaints, 0, 7, None, BAD_COMPLAINT.replace(b'"yes"', b"true"), None)
    result = intake(engine).unprocessable(message, "KeyError", NOW)
    (letter,) = result.dead_letters
    assert letter.reason is RejectionReason.unprocessable and letter.original_id is not None
    kept = DeadLetterOriginals(engine).get(letter.original_id)
    assert kept is not None and kept.value == message.value and kept.key is None


def test_a_complaint_put_on_the_commands_topic_is_kept_in_the_command_batch(engine: Engine) -> None:
    handler = CommandHandler(
        WorkOrderRepository(engine), frozenset(POLICY.units.ids()), POLICY.lifecycle, SenderKeys()
    )
    message = InboundMessage(TOPICS.commands, 0, 3, b"T-1", BAD_COMPLAINT, 1_795_000_000_002)
    (letter,) = handler.handle([message], NOW).dead_letters
    assert letter.reason is RejectionReason.wrong_topic
    assert letter.redaction is Redaction.personal_fields and letter.original_id is not None
    kept = DeadLetterOriginals(engine).get(letter.original_id)
    assert kept is not None and kept.value == BAD_COMPLAINT


def test_originals_past_their_retention_are_deleted_and_the_rest_kept(engine: Engine) -> None:
    originals = DeadLetterOriginals(engine)
    keep_for = timedelta(days=Settings().dead_letter_retention_days)
    ages = {"dl-old": keep_for + timedelta(seconds=1), "dl-edge": keep_for, "dl-new": timedelta(days=1)}
    originals.keep(
        [
            KeptOriginal(name, TOPICS.complaints, 0, i, None, b"{}", RejectionReason.not_json, NOW - age)
            for i, (name, age) in enumerate(ages.items())
        ]
    )
    assert Retention(originals, keep_for).purge(NOW) == 1
    assert originals.get("dl-old") is None
    assert originals.get("dl-edge") is not None and originals.get("dl-new") is not None
    assert Retention(originals, keep_for).purge(NOW) == 0


def test_the_retention_is_thirty_days_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().dead_letter_retention_days == 30
    monkeypatch.setenv("WO_DEAD_LETTER_RETENTION_DAYS", "7")
    assert Settings().dead_letter_retention_days == 7


def test_the_leaders_background_purge_deletes_what_is_past_its_retention(engine: Engine) -> None:
    originals = DeadLetterOriginals(engine)
    old = KeptOriginal("dl-old", TOPICS.complaints, 0, 1, None, b"{}", RejectionReason.not_json, NOW)
    new = KeptOriginal(
        "dl-new", TOPICS.complaints, 0, 2, None, b"{}", RejectionReason.not_json, NOW + timedelta(days=2)
    )
    originals.keep([old, new])
    repository = WorkOrderRepository(engine)
    settings = Settings(dead_letter_retention_days=1)
    background = Background(
        settings,
        intake(engine),
        CommandHandler(repository, frozenset(POLICY.units.ids()), POLICY.lifecycle, SenderKeys()),
        Escalations(repository, POLICY.deadlines),
        Outputs(settings),
        lambda: NOW + timedelta(days=2, seconds=1),
        None,
        Retention(originals, timedelta(days=settings.dead_letter_retention_days)),
    )
    asyncio.run(background.purge())
    assert originals.get("dl-old") is None
    assert originals.get("dl-new") is not None
