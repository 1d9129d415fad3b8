"""What the intake writes in bulk (COPY on PostgreSQL, one statement per table on SQLite) reads
back as the user sees it: the order's history and its sources, with the publisher's hostile
extra fields as sent, and the dispatched mark once, whatever the number of marks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from tests.integration.pipeline_support import REPO_ROOT, SAMPLES, file_lines
from workorder_pipeline.config.settings import Topics
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.schemas.workorder import PIPELINE_ACTOR, WorkOrderStatus
from workorder_pipeline.services.intake import InboundMessage, Intake
from workorder_pipeline.services.policy_files import load_policy, load_reference
from workorder_pipeline.storage.repository import WorkOrderRepository

pytestmark = pytest.mark.integration

TOPICS = Topics()
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
ALARM = json.loads(file_lines(SAMPLES / "vehicle-alarms.jsonl")[0])  # a 12 % overspeed: an order
#: Extra fields a publisher may send, kept in the order's evidence as sent.
HOSTILE = {
    "note": "quotes \" ' backslash \\ {braces},commas\ttab\nline 🚓🚨 \u0001 控制字符",
    "escaped_nul_as_text": "\\u0000",
    "largest_int": 2**63 - 1,
    "smallest_int": -(2**63),
    "huge_float": 1.5e300,
    "nested": [{"": None, "k": [True, False, 0.1]}],
    "big_field": "界" * 300_000,  # 900 KB of UTF-8: a message may hold up to 1 MB
}


def make_intake(engine: Engine) -> tuple[Intake, WorkOrderRepository]:
    store = WorkOrderRepository(engine)
    intake = Intake(
        compile_policy(load_policy(REPO_ROOT / "policy")),
        store,
        TOPICS.inbound(),
        reference=lambda: load_reference(REPO_ROOT / "policy"),
        max_event_lead=timedelta(days=3650),
        max_event_age=timedelta(days=36500),
    )
    return intake, store


def alarm(alarm_id: str, plate: str, offset: int, **extra: Any) -> InboundMessage:
    value = json.dumps({**ALARM, "alarm_id": alarm_id, "plate": plate, **extra}, ensure_ascii=False)
    return InboundMessage(TOPICS.vehicle_alarms, 0, offset, alarm_id.encode(), value.encode())


def test_an_order_from_a_hostile_alarm_shows_its_history_and_evidence_as_sent(engine: Engine) -> None:
    intake, store = make_intake(engine)
    clean = alarm("A-NUL", "苏F20002", 1).value or b""
    nul = clean.replace(b'"plate"', b'"x":"a\\u0000b","plate"')
    batch = [
        alarm("A-HOSTILE", "苏F20001", 0, **HOSTILE),
        InboundMessage(TOPICS.vehicle_alarms, 0, 1, b"A-NUL", nul),
    ]
    result = intake.handle(batch, NOW)
    intake.dispatched(result.to_dispatch, NOW + timedelta(seconds=1))

    # A real NUL cannot be stored: its message is a dead letter, its neighbour an order.
    assert [letter.source.offset for letter in result.dead_letters] == [1]
    [order] = result.created
    stored = store.get(order.id)
    assert stored is not None and stored.status is WorkOrderStatus.dispatched
    assert stored.source_ids == ("js-key-vehicles/A-HOSTILE",)
    [source] = store.sources(order.id)
    assert {name: source["payload"][name] for name in HOSTILE} == HOSTILE
    assert source["position"] == f"{TOPICS.vehicle_alarms}/0/0"
    assert source["received_at"] == NOW
    history = store.history(order.id)
    assert [(row["type"], row["actor"], row["at"]) for row in history] == [
        ("registered", PIPELINE_ACTOR, NOW),
        ("dispatched", PIPELINE_ACTOR, NOW + timedelta(seconds=1)),
    ]
    registered = history[0]["detail"]
    assert (registered["source"], registered["unit"]) == (f"{TOPICS.vehicle_alarms}/0/0", order.unit)
    assert registered["due_at"] == order.due_at.isoformat()
    assert history[1]["detail"] == {"unit": order.unit}


def test_marking_a_batch_dispatched_again_adds_no_second_dispatched_row(engine: Engine) -> None:
    intake, store = make_intake(engine)
    result = intake.handle([alarm(f"A-{n}", f"苏F3000{n}", n) for n in range(3)], NOW)
    assert len(result.to_dispatch) == 3
    later = NOW + timedelta(minutes=1)
    intake.dispatched(result.to_dispatch, NOW)
    intake.dispatched(result.to_dispatch, later)  # a re-delivered batch's mark
    for order in result.to_dispatch:
        dispatched = [row for row in store.history(order.id) if row["type"] == "dispatched"]
        assert [(row["at"], row["detail"]) for row in dispatched] == [(NOW, {"unit": order.unit})]
        stored = store.get(order.id)
        assert stored is not None and stored.status is WorkOrderStatus.dispatched
    assert store.undispatched() == []
