"""A fixed mixed batch through Intake on SQLite gives the same verdicts and stored rows.

The guard for work on the intake's speed (issue 22): every kind, re-sends and re-deliveries,
merges into stored orders and into orders of the same batch, a suppression of each reason,
documents the contracts normalize (plates, times, stripped ids, unknown fields) and hostile
documents that must be dead-lettered. Everything a user or the monthly report could read
afterwards (each batch's counts and dead letters, every stored order, audit row, source
payload, suppressed row, dead-letter log and kept original) is compared with
``intake_verdicts.json``, recorded from main (7e2ea1d) before the intake was changed (re-recorded
once since: orders take their first check at dispatch, not their creation time); a few
verdicts are spelled out below as well, so the file cannot drift unnoticed.

Re-record only for an intended change of behaviour: ``WO_RECORD_VERDICTS=1 pytest <this file>``.
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.unit.test_intake_service import NOW, POLICY, REFERENCE, TOPICS, messages_from, new_store
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.schemas.policy import MinorViolationRule, MuteWindow
from workorder_pipeline.services.intake import InboundMessage, Intake, IntakeResult
from workorder_pipeline.storage import tables
from workorder_pipeline.storage.repository import WorkOrderRepository

EXPECTED = Path(__file__).with_name("intake_verdicts.json")
SAMPLES = Path(__file__).resolve().parents[2] / "samples"
LATER = NOW + timedelta(hours=1)


def _policy() -> Any:
    """The bundled policy, plus a mute window and a minor-violation rule that suppresses."""
    triage = POLICY.triage
    mute = MuteWindow(
        key="nt-taxi-maintenance",
        platform_id="nt-taxi-supervision",
        starts_at=datetime.fromisoformat("2026-11-21T00:00:00+08:00"),
        ends_at=datetime.fromisoformat("2026-11-22T00:00:00+08:00"),
        reason="maintenance",
    )
    quiet = MinorViolationRule(
        key="first-distraction",
        match={"kind": "vehicle_alarm", "alarm_type": "dsm_distraction", "level": 2},
        lookback_days=30,
        action="suppress",
    )
    changed = triage.model_copy(
        update={"mute_windows": [mute], "minor_violations": [*triage.minor_violations, quiet]}
    )
    return POLICY.model_copy(update={"triage": changed})


def _sample(file: str, line: int) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SAMPLES / file).read_text(encoding="utf-8").splitlines()[line])
    return document


def _alarm(alarm_id: str, **changes: Any) -> dict[str, Any]:
    return {**_sample("vehicle-alarms.jsonl", 0), "alarm_id": alarm_id, **changes}


def _crafted() -> list[tuple[str, bytes | None]]:
    """(topic, value) of the second batch, in order."""
    alarm = _sample("vehicle-alarms.jsonl", 0)
    suspect = _sample("suspects.jsonl", 0)
    checkin = _sample("checkin-failures.jsonl", 0)
    complaint = _sample("complaints.jsonl", 0)
    valid: list[tuple[str, dict[str, Any]]] = [
        (TOPICS.vehicle_alarms, alarm),  # re-sent from batch 1 (another position)
        (TOPICS.vehicle_alarms, _alarm("T-MERGE-STORED")),  # merges into batch 1's order
        (TOPICS.vehicle_alarms, _alarm("T-NEW-1", plate="苏F99999", alarm_type="night_driving_ban")),
        (TOPICS.vehicle_alarms, _alarm("T-NEW-2", plate="苏F99999", alarm_type="night_driving_ban")),
        (TOPICS.vehicle_alarms, _alarm("T-NEW-3", plate="苏F99999", alarm_type="night_driving_ban")),
        (TOPICS.vehicle_alarms, _alarm("T-UNDER-10", plate="苏F88888", speed_kmh=105.0)),  # threshold
        (TOPICS.vehicle_alarms, _alarm("T-WHITELIST", plate="苏F00001")),
        (
            TOPICS.vehicle_alarms,
            _alarm("T-REVIEW", plate="苏F77777", enterprise={"id": "91320682MA1P3Q4R5T", "name": "x"}),
        ),
        (
            TOPICS.vehicle_alarms,
            _alarm(
                "T-MUTED",
                platform_id="nt-taxi-supervision",
                plate="苏F66666",
                occurred_at="2026-11-21T10:00:00+08:00",
            ),
        ),
        (TOPICS.vehicle_alarms, _alarm("T-STALE", plate="苏F55555", occurred_at="2024-01-01T08:00:00+08:00")),
        (
            TOPICS.vehicle_alarms,
            _alarm("T-QUIET-1", plate="苏F44444", alarm_type="dsm_distraction", level=2),  # minor: suppressed
        ),
        (
            TOPICS.vehicle_alarms,
            _alarm("T-WARN", plate="苏F33333", alarm_type="dsm_phone", level=2),  # minor: warned
        ),
        (
            TOPICS.vehicle_alarms,
            # Normalized by the contract: full-width plate, padded id, padded enterprise id,
            # fractional seconds in another offset, an integer speed, unknown fields kept.
            {
                **_alarm("  T-NORMALIZED  ", plate="苏Ｆ１２３４５", speed_kmh=130),
                "enterprise": {"id": " 91320682MA1P7Q4R76", "name": " 雉水 ", "extra": [1, {"a": None}]},
                "occurred_at": "2026-11-22T01:02:03.456789-05:00",
                "vendor": {"firmware": "v2", "flags": [True, False], "ratio": 0.5},
            },
        ),
        (TOPICS.suspects, {**suspect, "entry_id": "T-SUSPECT-FEW", "pass_count": 3}),
        (TOPICS.suspects, {**suspect, "entry_id": "T-SUSPECT", "list_date": date(2026, 11, 22).isoformat()}),
        (TOPICS.checkin_failures, {**checkin, "check_id": "T-CHECKIN-REPEAT"}),
        (TOPICS.complaints, {**complaint, "ticket_id": "T-COMPLAINT", "urgent": True}),
        (
            TOPICS.complaints,
            {**complaint, "ticket_id": "T-COMPLAINT-OLD", "received_at": "2024-06-01T09:00:00+08:00"},
        ),
    ]
    hostile: list[tuple[str, bytes | None]] = [
        (TOPICS.vehicle_alarms, None),
        (TOPICS.vehicle_alarms, b"\xff\xfe not utf-8"),
        (TOPICS.vehicle_alarms, b'{"schema": "vehicle-alarm/1", "schema": "vehicle-alarm/1"}'),
        (TOPICS.vehicle_alarms, json.dumps(_alarm("T-NUL\u0000")).encode()),
        (TOPICS.vehicle_alarms, json.dumps({**_alarm("T-BIG"), "odometer": 2**70}).encode()),
        (
            TOPICS.vehicle_alarms,
            json.dumps({**_alarm("T-DEEP"), "x": [[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}).encode(),
        ),
        (TOPICS.vehicle_alarms, json.dumps(_alarm("T-STRING-LEVEL", level="3")).encode()),
        (
            TOPICS.vehicle_alarms,
            json.dumps(_alarm("T-NO-OFFSET", occurred_at="2026-11-22T08:00:00")).encode(),
        ),
        (TOPICS.vehicle_alarms, json.dumps(_alarm("T-PLATE", plate="ABC")).encode()),
        (
            TOPICS.vehicle_alarms,
            json.dumps(_alarm("T-FUTURE", occurred_at="2027-01-01T08:00:00+08:00")).encode(),
        ),
        (TOPICS.vehicle_alarms, json.dumps(suspect).encode()),  # wrong topic
        (TOPICS.complaints, json.dumps({**complaint, "ticket_id": "T-BAD", "channel": "fax"}).encode()),
        (TOPICS.vehicle_alarms, b"[1, 2]"),
    ]
    encoded = [(topic, json.dumps(document, ensure_ascii=False).encode()) for topic, document in valid]
    return encoded + hostile


def _messages() -> tuple[list[InboundMessage], list[InboundMessage]]:
    first = messages_from("vehicle-alarms.jsonl", "suspects.jsonl", "checkin-failures.jsonl")
    first += messages_from("complaints.jsonl", "invalid.jsonl", "not-json.txt", first_offset=len(first))
    offset = len(first)
    second = [
        InboundMessage(topic, 1, offset + n, f"k{n}".encode(), value, 1_795_000_100_000 + n)
        for n, (topic, value) in enumerate(_crafted())
    ]
    # A message of batch 1 delivered again from its own position.
    return first, [*second, first[0]]


def _result(result: IntakeResult) -> dict[str, Any]:
    return {
        "received": sorted(result.received.items()),
        "rejected": sorted(result.rejected.items()),
        "merged": sorted(result.merged.items()),
        "suppressed": sorted(result.suppressed.items()),
        "late": sorted(result.late.items()),
        "redelivered": sorted(result.redelivered.items()),
        "platforms": sorted((p, at.isoformat()) for p, at in result.platforms.items()),
        "created": [order.model_dump(mode="json") for order in result.created],
        "to_dispatch": [order.id for order in result.to_dispatch],
        "dead_letters": [letter.model_dump(mode="json", by_alias=True) for letter in result.dead_letters],
        "originals": [(o.id, o.topic, o.offset, o.reason.value) for o in result.originals],
    }


def _rows(store: WorkOrderRepository) -> dict[str, Any]:
    """Every row of the tables intake writes, surrogate ids left out, in a fixed order."""
    listed: dict[str, Any] = {}
    with store.engine.connect() as connection:
        for table in (
            tables.work_order,
            tables.work_order_source,
            tables.suppressed_signal,
            tables.work_order_event,
            tables.dead_letter_original,
            tables.dead_letter_log,
            tables.platform_seen,
        ):
            rows = [
                {
                    k: _plain(v)
                    for k, v in row._mapping.items()
                    if not (table is tables.work_order_event and k == "id")
                }
                for row in connection.execute(sa.select(table))
            ]
            listed[table.name] = sorted(
                rows, key=lambda row: json.dumps(row, sort_keys=True, ensure_ascii=False)
            )
    return listed


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def _verdicts(store: WorkOrderRepository | None = None) -> dict[str, Any]:
    """What the three batches gave and stored (on a fresh SQLite store unless given one)."""
    store = store or new_store()
    intake = Intake(compile_policy(_policy()), store, TOPICS.inbound(), reference=lambda: REFERENCE)
    first, second = _messages()
    seen: dict[str, Any] = {}
    for name, batch, now in (("first", first, NOW), ("second", second, LATER), ("again", second, LATER)):
        result = intake.handle(batch, now)
        intake.dispatched(result.to_dispatch, now)
        seen[name] = _result(result)
    seen["rows"] = _rows(store)
    # Round-tripped through JSON: tuples and lists compare alike.
    plain: dict[str, Any] = json.loads(json.dumps(seen, ensure_ascii=False, sort_keys=True))
    return plain


def test_the_mixed_batch_gives_the_recorded_verdicts_and_rows() -> None:
    verdicts = _verdicts()
    if os.environ.get("WO_RECORD_VERDICTS") == "1":
        EXPECTED.write_text(json.dumps(verdicts, ensure_ascii=False, indent=1, sort_keys=True) + "\n")
    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))
    for part in ("first", "second", "again"):
        assert verdicts[part] == expected[part], part
    for table, rows in expected["rows"].items():
        assert verdicts["rows"][table] == rows, table


def test_the_mixed_batch_has_a_suppression_of_each_reason_merges_and_dead_letters() -> None:
    verdicts = _verdicts()
    second = verdicts["second"]
    assert {reason for reason, _ in second["suppressed"]} == {
        "mute_window",
        "whitelist",
        "threshold",
        "minor_violation",
        "stale",
    }
    assert dict(second["merged"]) == {"vehicle_alarm": 3, "suspect": 1, "checkin_failure": 1}
    assert dict(second["redelivered"]) == {"vehicle_alarm": 2}
    assert dict(second["late"]) == {"complaint": 1}
    assert len(second["dead_letters"]) == 13
    again = verdicts["again"]
    assert again["created"] == [] and again["to_dispatch"] == []
    # The stored copy of a signal is the contract's normalized document, unknown fields kept.
    normalized = next(
        row["payload"]
        for row in verdicts["rows"]["work_order_source"]
        if row["source_key"] == "vehicle_alarm:js-key-vehicles/T-NORMALIZED"
    )
    assert normalized["alarm_id"] == "T-NORMALIZED"
    assert normalized["plate"] == "苏F12345"
    assert normalized["enterprise"] == {"id": "91320682MA1P7Q4R76", "name": "雉水", "extra": [1, {"a": None}]}
    assert normalized["occurred_at"] == "2026-11-22T06:02:03.456789Z"
    assert normalized["speed_kmh"] == 130.0
    assert normalized["vendor"] == {"firmware": "v2", "flags": [True, False], "ratio": 0.5}
    assert normalized["evidence"] is None and normalized["schema"] == "vehicle-alarm/1"
