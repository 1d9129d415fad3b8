"""Intake.handle over the bundled samples: every message ends as an order or a dead letter."""

from __future__ import annotations

import base64
import gc
import itertools
import json
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from workorder_pipeline.config.settings import Topics
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.processors.intake import DEFAULT_MAX_MESSAGE_BYTES
from workorder_pipeline.schemas.deadletter import DeadLetter, Redaction, RejectionReason
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import WorkOrder
from workorder_pipeline.services.intake import InboundMessage, Intake, IntakeResult
from workorder_pipeline.services.policy_files import load_policy, load_reference
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.dead_letters import DeadLetterOriginals
from workorder_pipeline.storage.repository import WorkOrderRepository

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
POLICY = load_policy(ROOT / "policy")
REFERENCE = load_reference(ROOT / "policy")
TOPICS = Topics()
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
RESENT_ALARM = "js-key-vehicles/JSKV-20261120-002416"

SAMPLE_TOPICS = {
    "vehicle-alarms.jsonl": TOPICS.vehicle_alarms,
    "suspects.jsonl": TOPICS.suspects,
    "checkin-failures.jsonl": TOPICS.checkin_failures,
    "complaints.jsonl": TOPICS.complaints,
    "invalid.jsonl": TOPICS.vehicle_alarms,
    "not-json.txt": TOPICS.vehicle_alarms,
}


#: Every store of this module's tests lives here, removed when the test process ends (one
#: directory per store, never removed, once left ~50,000 of them in /tmp).
_STORES = tempfile.TemporaryDirectory(prefix="wo-intake-")
_STORE_NUMBERS = itertools.count()


def _migrated_template() -> Path:
    template = Path(_STORES.name) / "template.db"
    migrate(f"sqlite:///{template}")
    return template


TEMPLATE_DB = _migrated_template()


def new_store() -> WorkOrderRepository:
    """A real repository on a fresh SQLite file (a copy of one migrated template: fast). Its
    file is deleted once nothing uses the repository any more."""
    path = Path(_STORES.name) / f"store-{next(_STORE_NUMBERS)}.db"
    shutil.copy(TEMPLATE_DB, path)
    engine = create_engine(f"sqlite:///{path}")
    repository = WorkOrderRepository(engine)
    weakref.finalize(repository, _drop, engine, path)
    return repository


def _drop(engine: Engine, path: Path) -> None:
    engine.dispose()
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)


def messages_from(*files: str, first_offset: int = 0) -> list[InboundMessage]:
    messages = []
    offset = first_offset
    for file in files:
        for line in (SAMPLES / file).read_bytes().splitlines():
            if not line.strip():
                continue
            messages.append(
                InboundMessage(
                    topic=SAMPLE_TOPICS[file],
                    partition=offset % 3,
                    offset=offset,
                    key=f"key-{offset}".encode(),
                    value=line,
                    timestamp_ms=1_795_000_000_000 + offset,
                )
            )
            offset += 1
    return messages


ALL_SAMPLES = messages_from(*SAMPLE_TOPICS)
VALID_FILES = ("vehicle-alarms.jsonl", "suspects.jsonl", "checkin-failures.jsonl", "complaints.jsonl")


def original_of(letter: DeadLetter, store: WorkOrderRepository) -> bytes | None:
    """The bytes a dead letter stands for: its payload, or (masked) the original kept in the database."""
    if letter.redaction is Redaction.none:
        assert letter.original_id is None
        return base64.b64decode(letter.payload, validate=True)
    assert letter.original_id is not None
    kept = DeadLetterOriginals(store.engine).get(letter.original_id)
    assert kept is not None
    return kept.value


def make_intake(
    store: WorkOrderRepository | None = None, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> Intake:
    return Intake(
        compile_policy(POLICY),
        store or new_store(),
        TOPICS.inbound(),
        reference=lambda: REFERENCE,
        max_message_bytes=max_bytes,
    )


def handle(messages: Sequence[InboundMessage], store: WorkOrderRepository | None = None) -> IntakeResult:
    return make_intake(store).handle(messages, NOW)


def orders_with_source(orders: Sequence[WorkOrder], source_id: str) -> list[WorkOrder]:
    return [order for order in orders if source_id in order.source_ids]


# ---------------------------------------------------------------- conservation


def test_every_sample_message_ends_as_an_order_or_a_dead_letter() -> None:
    result = handle(ALL_SAMPLES)
    assert sum(result.received.values()) + sum(result.rejected.values()) == len(ALL_SAMPLES)
    assert len(result.dead_letters) == sum(result.rejected.values())
    outcomes = len(result.created) + sum(result.merged.values()) + sum(result.suppressed.values())
    assert outcomes + sum(result.redelivered.values()) == sum(result.received.values())


def test_the_samples_give_the_documented_counts() -> None:
    result = handle(ALL_SAMPLES)
    assert result.received == {
        SignalKind.vehicle_alarm: 13,
        SignalKind.suspect: 5,
        SignalKind.checkin_failure: 3,
        SignalKind.complaint: 6,
    }
    # 27 valid signals: one re-sent alarm, two under a suppression threshold (see policy/triage.yaml).
    assert sum(result.redelivered.values()) == 1
    assert sum(result.suppressed.values()) == 2
    assert len(result.created) == 27 - 1 - 2
    assert sum(result.rejected.values()) == 8 + 2
    assert result.rejected[RejectionReason.not_json] == 2
    assert result.rejected[RejectionReason.invalid_field] == 3


def test_every_dead_letter_points_at_a_distinct_rejected_message() -> None:
    store = new_store()
    result = handle(ALL_SAMPLES, store)
    positions = [(d.source.topic, d.source.partition, d.source.offset) for d in result.dead_letters]
    assert len(set(positions)) == len(positions)
    rejected_lines = messages_from("invalid.jsonl", "not-json.txt", first_offset=0)
    assert {original_of(d, store) for d in result.dead_letters} == {m.value for m in rejected_lines}


# ---------------------------------------------------------------- re-sent alarms


def test_the_resent_alarm_gives_one_order() -> None:
    result = handle(messages_from("vehicle-alarms.jsonl"))
    assert len(orders_with_source(result.created, RESENT_ALARM)) == 1
    assert len(orders_with_source(result.to_dispatch, RESENT_ALARM)) == 1
    assert result.redelivered == {SignalKind.vehicle_alarm: 1}
    assert len(result.created) + sum(result.suppressed.values()) == 12


def test_a_batch_delivered_twice_opens_no_new_order() -> None:
    store = new_store()
    intake = make_intake(store)
    messages = messages_from(*VALID_FILES)
    first = intake.handle(messages, NOW)
    intake.dispatched(first.to_dispatch, NOW)
    second = intake.handle(messages, NOW)
    assert second.created == []
    assert second.to_dispatch == []
    assert sum(second.redelivered.values()) == len(messages)
    assert store.count() == len(first.created)


def test_orders_never_published_are_offered_again_when_their_signal_returns() -> None:
    store = new_store()
    intake = make_intake(store)
    messages = messages_from("suspects.jsonl")
    first = intake.handle(messages, NOW)
    again = intake.handle(messages, NOW)
    assert again.created == []
    assert {o.id for o in again.to_dispatch} == {o.id for o in first.created}
    assert {o.id for o in intake.undispatched()} == {o.id for o in first.created}


def test_orders_are_ready_to_dispatch_when_created() -> None:
    result = handle(messages_from(*VALID_FILES))
    assert result.to_dispatch == result.created
    for order in result.to_dispatch:
        assert order.dispatch_message().work_order_id == order.id


# ---------------------------------------------------------------- dead letters


def test_dead_letters_carry_the_original_bytes_or_their_reference_and_the_position() -> None:
    messages = messages_from("invalid.jsonl", "not-json.txt")
    by_offset = {m.offset: m for m in messages}
    store = new_store()
    result = handle(messages, store)
    assert len(result.dead_letters) == len(messages)
    # The complaint put on the alarms topic is masked; its original is in the database.
    assert [letter.redaction for letter in result.dead_letters].count(Redaction.personal_fields) == 1
    for letter in result.dead_letters:
        original = by_offset[letter.source.offset]
        assert original_of(letter, store) == original.value
        assert letter.source.topic == original.topic
        assert letter.source.partition == original.partition
        assert letter.source.key is not None
        assert base64.b64decode(letter.source.key) == original.key
        assert letter.source.timestamp_ms == original.timestamp_ms
        assert letter.dead_lettered_at == NOW
        assert letter.detail


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param(
            b'{"schema":"vehicle-alarm/1","plate":"\xe8\x8b\x8f\xff"}',
            RejectionReason.not_utf8,
            id="not-utf8",
        ),
        pytest.param(b"\x00\x01\x02\xfe\xff", RejectionReason.not_utf8, id="binary"),
        pytest.param(b"", RejectionReason.empty_message, id="empty"),
        pytest.param(b"x" * 2048, RejectionReason.too_large, id="too-large"),
    ],
)
def test_dead_letter_payload_round_trips_to_the_exact_input(value: bytes, reason: RejectionReason) -> None:
    message = InboundMessage(topic=TOPICS.vehicle_alarms, partition=4, offset=981, key=None, value=value)
    result = make_intake(max_bytes=1024).handle([message], NOW)
    (letter,) = result.dead_letters
    assert letter.reason == reason
    assert base64.b64decode(letter.payload, validate=True) == value
    assert (letter.source.topic, letter.source.partition, letter.source.offset) == (
        TOPICS.vehicle_alarms,
        4,
        981,
    )
    assert letter.source.key is None


def test_a_dead_letter_serializes_with_its_contract_name() -> None:
    result = handle(messages_from("not-json.txt"))
    document = json.loads(result.dead_letters[0].model_dump_json(by_alias=True))
    assert document["schema"] == "dead-letter/1"
    assert document["reason"] == "not_json"


def test_a_bad_message_does_not_stop_the_rest_of_the_batch() -> None:
    good = messages_from("suspects.jsonl")
    bad = messages_from("not-json.txt", first_offset=100)
    result = handle([bad[0], *good, bad[1]])
    assert len(result.created) == len(good)
    assert len(result.dead_letters) == 2


def test_a_message_whose_schema_is_a_list_is_dead_lettered_and_the_batch_goes_on() -> None:
    good = messages_from("suspects.jsonl")
    bad = InboundMessage(
        topic=TOPICS.suspects, partition=0, offset=99, key=None, value=b'{"schema":["suspect/1"]}'
    )
    result = handle([*good, bad])
    assert len(result.created) == len(good)
    assert [d.reason for d in result.dead_letters] == [RejectionReason.unknown_contract]


# ---------------------------------------------------------------- what is stored


def test_a_suppressed_signal_is_recorded_whole_with_its_rule_and_reason() -> None:
    store = new_store()
    result = handle(messages_from("vehicle-alarms.jsonl"), store)
    assert orders_with_source(result.created, "rg-bus-dispatch/RGBUS-20261121-0042") == []
    (record,) = [r for r in store.suppressed() if r["source_key"].endswith("RGBUS-20261121-0042")]
    assert record["reason"] == "threshold"
    assert record["rule_key"] == "level-1-driver-behaviour"
    assert record["payload"]["device_sn"] == "JT808-RG-00A3F7"  # unknown fields kept
    assert record["payload"]["schema"] == "vehicle-alarm/1"


def test_an_order_keeps_its_evidence_and_every_triage_step_in_the_audit_trail() -> None:
    store = new_store()
    result = handle(messages_from("vehicle-alarms.jsonl"), store)
    order = next(o for o in result.created if o.route_key == "alarm.passenger.night-ban")
    (source,) = store.sources(order.id)
    assert source["payload"]["alarm_type"] == "night_driving_ban"
    (registered,) = [e for e in store.history(order.id) if e["type"] == "registered"]
    decision = registered["detail"]
    assert decision["unit"] == "squad-1"
    assert decision["priority"] == "P1"
    assert decision["route_path"] == ["default", "alarm", "alarm.passenger", "alarm.passenger.night-ban"]
    assert decision["source"].startswith(f"{TOPICS.vehicle_alarms}/")
    steps = [step["step"] for step in decision["steps"]]
    assert steps[:4] == ["mute_window", "whitelist", "threshold", "route"]
    assert "dedupe" in steps


def test_the_complaint_about_squad_1_goes_to_legal() -> None:
    result = handle(messages_from("complaints.jsonl"))
    (order,) = orders_with_source(result.created, "12345/NT12345-20261122-0094027")
    assert order.unit == "legal"
    assert order.route_key == "conflict-of-interest"


def test_the_full_width_plate_and_the_complaint_about_it_name_one_vehicle() -> None:
    result = handle(messages_from("vehicle-alarms.jsonl", "complaints.jsonl"))
    (alarm,) = orders_with_source(result.created, "nt-taxi-supervision/NTTX-261119-00318")
    (complaint,) = orders_with_source(result.created, "12345/NT12345-20261120-0087412")
    assert alarm.subject.plate == complaint.subject.plate == "苏F3T827"


def test_stored_complaints_keep_the_complainant_for_the_callback_but_orders_do_not_show_it() -> None:
    store = new_store()
    result = handle(messages_from("complaints.jsonl"), store)
    (order,) = orders_with_source(result.created, "12328/JS12328-2026112000153")
    (source,) = store.sources(order.id)
    assert source["payload"]["complainant"] == {"name": "顾晓明", "phone": "13962718304"}
    for order in result.to_dispatch:
        text = order.dispatch_message().model_dump_json(by_alias=True)
        assert "顾晓明" not in text
        assert "13962718304" not in text


def test_a_store_no_longer_used_leaves_no_file_behind() -> None:
    store = new_store()
    database = Path(str(store.engine.url.database))
    handle(ALL_SAMPLES[:3], store)
    assert database.is_file()
    del store
    gc.collect()
    assert not database.exists()
    assert database.parent.name.startswith("wo-intake-")  # the one directory, removed at exit
