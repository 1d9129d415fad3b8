"""Intake.handle over the bundled samples: every message ends as an order or a dead letter."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from config.settings import Topics
from processors.intake import DEFAULT_MAX_MESSAGE_BYTES
from schemas.deadletter import RejectionReason
from schemas.signal import SignalKind
from schemas.workorder import WorkOrder
from services.intake import InboundMessage, Intake, IntakeResult
from services.policy_files import load_policy
from storage.repository import NewOrder, RegisterOutcome

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
POLICY = load_policy(ROOT / "policy")
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


class InMemoryStore:
    """A WorkOrderStore keeping orders in dicts: a publisher id registers at most one order."""

    def __init__(self) -> None:
        self.orders: dict[str, WorkOrder] = {}
        self.registered: list[NewOrder] = []
        self.order_by_source: dict[str, str] = {}
        self.dispatched_ids: set[str] = set()

    def register(self, batch: Sequence[NewOrder], now: datetime) -> RegisterOutcome:
        created: list[WorkOrder] = []
        redelivered: list[SignalKind] = []
        known: list[str] = []
        for item in batch:
            if item.source_key in self.order_by_source:
                redelivered.append(item.order.kind)
                known.append(self.order_by_source[item.source_key])
                continue
            self.order_by_source[item.source_key] = item.order.id
            self.orders[item.order.id] = item.order
            self.registered.append(item)
            created.append(item.order)
        created_ids = {order.id for order in created}
        pending = [
            self.orders[order_id]
            for order_id in dict.fromkeys(known)
            if order_id not in self.dispatched_ids and order_id not in created_ids
        ]
        return RegisterOutcome(created=created, redelivered=redelivered, to_dispatch=created + pending)

    def mark_dispatched(self, orders: Sequence[WorkOrder], now: datetime) -> None:
        self.dispatched_ids.update(order.id for order in orders)

    def undispatched(self, limit: int = 1000) -> list[WorkOrder]:
        return [o for o in self.orders.values() if o.id not in self.dispatched_ids][:limit]


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


def make_intake(store: InMemoryStore | None = None, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Intake:
    return Intake(POLICY, store or InMemoryStore(), TOPICS.inbound(), max_message_bytes=max_bytes)


def handle(messages: Sequence[InboundMessage], store: InMemoryStore | None = None) -> IntakeResult:
    return make_intake(store).handle(messages, NOW)


def orders_with_source(orders: Sequence[WorkOrder], source_id: str) -> list[WorkOrder]:
    return [order for order in orders if source_id in order.source_ids]


# ---------------------------------------------------------------- conservation


def test_every_sample_message_ends_as_an_order_or_a_dead_letter() -> None:
    result = handle(ALL_SAMPLES)
    assert sum(result.received.values()) + sum(result.rejected.values()) == len(ALL_SAMPLES)
    assert len(result.dead_letters) == sum(result.rejected.values())
    assert len(result.created) + sum(result.redelivered.values()) == sum(result.received.values())


def test_the_samples_give_the_documented_counts() -> None:
    result = handle(ALL_SAMPLES)
    assert result.received == {
        SignalKind.vehicle_alarm: 13,
        SignalKind.suspect: 5,
        SignalKind.checkin_failure: 3,
        SignalKind.complaint: 6,
    }
    assert len(result.created) == 12 + 5 + 3 + 6
    assert sum(result.rejected.values()) == 8 + 2
    assert result.rejected[RejectionReason.not_json] == 2
    assert result.rejected[RejectionReason.invalid_field] == 3


def test_every_dead_letter_points_at_a_distinct_rejected_message() -> None:
    result = handle(ALL_SAMPLES)
    positions = [(d.source.topic, d.source.partition, d.source.offset) for d in result.dead_letters]
    assert len(set(positions)) == len(positions)
    rejected_lines = messages_from("invalid.jsonl", "not-json.txt", first_offset=0)
    assert {base64.b64decode(d.payload) for d in result.dead_letters} == {m.value for m in rejected_lines}


# ---------------------------------------------------------------- re-sent alarms


def test_the_resent_alarm_gives_one_order() -> None:
    result = handle(messages_from("vehicle-alarms.jsonl"))
    assert len(orders_with_source(result.created, RESENT_ALARM)) == 1
    assert len(orders_with_source(result.to_dispatch, RESENT_ALARM)) == 1
    assert result.redelivered == {SignalKind.vehicle_alarm: 1}
    assert len(result.created) == 12


def test_a_batch_delivered_twice_opens_no_new_order() -> None:
    store = InMemoryStore()
    intake = make_intake(store)
    messages = messages_from(*VALID_FILES)
    first = intake.handle(messages, NOW)
    intake.dispatched(first.to_dispatch, NOW)
    second = intake.handle(messages, NOW)
    assert second.created == []
    assert second.to_dispatch == []
    assert sum(second.redelivered.values()) == len(messages)
    assert len(store.orders) == len(first.created)


def test_orders_never_published_are_offered_again_when_their_signal_returns() -> None:
    store = InMemoryStore()
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


def test_dead_letters_carry_the_original_bytes_and_position() -> None:
    messages = messages_from("invalid.jsonl", "not-json.txt")
    by_offset = {m.offset: m for m in messages}
    result = handle(messages)
    assert len(result.dead_letters) == len(messages)
    for letter in result.dead_letters:
        original = by_offset[letter.source.offset]
        assert base64.b64decode(letter.payload, validate=True) == original.value
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
        pytest.param(b"", RejectionReason.not_json, id="empty"),
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


def registered_item(store: InMemoryStore, source_id: str) -> NewOrder:
    (item,) = [i for i in store.registered if source_id in i.order.source_ids]
    return item


def test_the_stored_evidence_keeps_unknown_fields_and_the_routing_reason() -> None:
    store = InMemoryStore()
    handle(messages_from("vehicle-alarms.jsonl"), store)
    item = registered_item(store, "rg-bus-dispatch/RGBUS-20261121-0042")
    payload: dict[str, Any] = item.payload
    assert payload["device_sn"] == "JT808-RG-00A3F7"
    assert payload["schema"] == "vehicle-alarm/1"
    assert item.decision["unit"] == "squad-1"
    assert item.decision["route_key"] == "alarm.passenger"
    assert item.decision["route_path"] == ["default", "alarm", "alarm.passenger"]
    assert item.decision["source"].startswith(f"{TOPICS.vehicle_alarms}/")


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
    store = InMemoryStore()
    result = handle(messages_from("complaints.jsonl"), store)
    item = registered_item(store, "12328/JS12328-2026112000153")
    assert item.payload["complainant"] == {"name": "顾晓明", "phone": "13962718304"}
    for order in result.to_dispatch:
        text = order.dispatch_message().model_dump_json(by_alias=True)
        assert "顾晓明" not in text
        assert "13962718304" not in text
