"""The whole pipeline, started exactly as the README says (``bin/wo run``), in embedded mode.

One pipeline runs for the module: the bundled samples (plus one message of invalid
UTF-8) are published once with ``bin/wo publish``; the tests then check the database,
the dispatched and dead-letter topics and the metrics, re-publish to check idempotence,
and finally stop the pipeline with SIGTERM.
"""

from __future__ import annotations

import base64
import json
import signal
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from tests.integration.pipeline_support import (
    REPO_ROOT,
    SAMPLES,
    PipelineProcess,
    children_of,
    clean_env,
    file_lines,
    json_lines,
    metric_samples,
    metric_total,
    pids_with_cmdline,
    process_alive,
    publisher_id,
    read_topic,
    wait_for,
)
from workorder_pipeline.wo.embedded_broker import free_port

pytestmark = pytest.mark.e2e

BIN_WO = REPO_ROOT / "bin" / "wo"
ALARMS_TOPIC = "monitoring.vehicle-alarms"
DISPATCHED_TOPIC = "workorders.dispatched"
DEAD_LETTERS_TOPIC = "workorders.dead-letters"

VALID_FILES = ["vehicle-alarms.jsonl", "suspects.jsonl", "checkin-failures.jsonl", "complaints.jsonl"]
PUBLISH_ARGS = [f"samples/{name}" for name in [*VALID_FILES, "invalid.jsonl"]]
NOT_JSON_ARGS = ["--topic", ALARMS_TOPIC, "samples/not-json.txt"]
#: samples/README.md: the reason each line of invalid.jsonl is rejected for.
INVALID_REASONS = [
    "missing_offset",
    "bad_plate",
    "wrong_topic",
    "unknown_contract",
    "invalid_field",
    "invalid_field",
    "invalid_field",
    "not_an_object",
]
BAD_UTF8_KEY = b"bad-utf8-key"
BAD_UTF8_VALUE = b'{"schema":"vehicle-alarm/1","alarm_id":"X-\xff\xfe-1","plate":"\xc3\x28"}'
KIND_OF_FAMILY = {
    "vehicle-alarm": "vehicle_alarm",
    "suspect": "suspect",
    "checkin-failure": "checkin_failure",
    "complaint": "complaint",
}

START_TIMEOUT_S = 60  # includes bin/wo's first-run bootstrap of .venv
PROCESS_TIMEOUT_S = 40  # the consumer group join alone takes ~5 s


@dataclass
class Expected:
    """What the samples should produce, derived from the files themselves."""

    distinct_ids: set[tuple[str, ...]]
    valid_lines_by_kind: Counter[str]
    invalid_payloads: list[tuple[bytes, str]]  # (original bytes, reason), every rejected message
    complainant_data: list[bytes]

    @property
    def valid_lines(self) -> int:
        return sum(self.valid_lines_by_kind.values())

    @property
    def messages(self) -> int:
        return self.valid_lines + len(self.invalid_payloads)


def complaints_in(path: Path) -> list[dict[str, Any]]:
    """The complaints among a file's JSON lines (some lines are JSON but no object)."""
    documents: list[object] = [json.loads(line) for line in file_lines(path)]
    return [d for d in documents if isinstance(d, dict) and d.get("schema") == "complaint/1"]


def expected_from_samples() -> Expected:
    events = [event for name in VALID_FILES for event in json_lines(SAMPLES / name)]
    by_kind = Counter(KIND_OF_FAMILY[str(e["schema"]).split("/")[0]] for e in events)
    invalid = file_lines(SAMPLES / "invalid.jsonl")
    assert len(invalid) == len(INVALID_REASONS)
    rejected = [
        *zip(invalid, INVALID_REASONS, strict=True),
        *[(line, "not_json") for line in file_lines(SAMPLES / "not-json.txt")],
        (BAD_UTF8_VALUE, "not_utf8"),
    ]
    personal = [
        str(e["complainant"][field]).encode()
        for e in [*json_lines(SAMPLES / "complaints.jsonl"), *complaints_in(SAMPLES / "invalid.jsonl")]
        for field in ("name", "phone")
        if e.get("complainant", {}).get(field)
    ]
    return Expected({publisher_id(e) for e in events}, by_kind, rejected, personal)


@dataclass
class Pipeline:
    process: PipelineProcess
    env: dict[str, str]
    bootstrap: str
    broker_port: int
    database: Path
    expected: Expected

    def publish(self, *args: str) -> str:
        done = subprocess.run(
            [str(BIN_WO), "publish", *args],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done.stdout.decode()

    def metrics(self) -> str:
        return self.process.metrics_text()

    def handled(self) -> float:
        """Messages fully handled so far: each becomes a received signal or a dead letter."""
        text = self.metrics()
        return metric_total(text, "wo_signals_received_total") + metric_total(
            text, "wo_signals_rejected_total"
        )

    def wait_handled(self, count: int) -> None:
        wait_for(
            lambda: self.handled() >= count or None,
            PROCESS_TIMEOUT_S,
            f"{count} messages handled",
            describe=self.process.tail,
        )
        assert self.handled() == count, self.metrics()

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.database, timeout=10) as conn:
            return conn.execute(sql, params).fetchall()

    def order_count(self) -> int:
        count: int = self.query("SELECT count(*) FROM work_order")[0][0]
        return count

    def order_for(self, publisher_fragment: str) -> tuple[str, str, str]:
        """(id, unit, priority) of the order holding the publisher id ending in the fragment."""
        found = self.query(
            "SELECT w.id, w.unit, w.priority FROM work_order w "
            "JOIN work_order_source s ON s.work_order_id = w.id WHERE s.source_key LIKE ?",
            f"%{publisher_fragment}",
        )
        assert len(found) == 1, (publisher_fragment, found)
        order_id, unit, priority = found[0]
        return str(order_id), str(unit), str(priority)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    tmp = tmp_path_factory.mktemp("e2e")
    broker_port, metrics_port = free_port(), free_port()
    while metrics_port == broker_port:
        metrics_port = free_port()
    database = tmp / "wo.db"
    env = clean_env(
        WO_EMBEDDED_BROKER_PORT=str(broker_port),
        WO_METRICS_PORT=str(metrics_port),
        WO_DATA_DIR=str(tmp / "data"),
        WO_DATABASE_URL=f"sqlite:///{database}",
        WO_LOG_FORMAT="json",
    )
    process = PipelineProcess.start([str(BIN_WO), "run"], env, tmp / "logs", metrics_port)
    try:
        process.wait_metrics(START_TIMEOUT_S)
        pipeline = Pipeline(
            process, env, f"127.0.0.1:{broker_port}", broker_port, database, expected_from_samples()
        )
        out = pipeline.publish(*PUBLISH_ARGS)
        assert f"{pipeline.expected.valid_lines + len(INVALID_REASONS)} messages sent" in out, out
        pipeline.publish(*NOT_JSON_ARGS)
        producer = KafkaProducer(bootstrap_servers=pipeline.bootstrap, acks="all", request_timeout_ms=10_000)
        try:
            producer.send(ALARMS_TOPIC, key=BAD_UTF8_KEY, value=BAD_UTF8_VALUE).get(timeout=10)
        finally:
            producer.close(timeout=5)
        pipeline.wait_handled(pipeline.expected.messages)
        yield pipeline
    finally:
        process.stop(signal.SIGTERM, timeout_s=20)


def test_first_run_decides_each_distinct_event_once(pipeline: Pipeline) -> None:
    """Each distinct valid event ends as exactly one of: a new order, a merge, a recorded suppression."""
    expected = pipeline.expected
    sources = [row[0] for row in pipeline.query("SELECT source_key FROM work_order_source")]
    suppressed = [row[0] for row in pipeline.query("SELECT source_key FROM suppressed_signal")]
    assert len(sources) + len(suppressed) == len(set(sources + suppressed)) == len(expected.distinct_ids)
    orders = pipeline.order_count()
    assert 0 < orders <= len(sources)
    text = pipeline.metrics()
    assert metric_total(text, "wo_work_orders_created_total") == orders
    assert metric_total(text, "wo_signals_deduplicated_total") == len(sources) - orders
    assert metric_total(text, "wo_signals_suppressed_total") == len(suppressed)

    # Routing as the policy says, for a few notable samples.
    _, unit, priority = pipeline.order_for("JSKV-20261120-000873")  # night-ban coach at 02:41+08:00
    assert (unit, priority) == ("squad-1", "P1")
    _, unit, _ = pipeline.order_for("NT12345-20261122-0094027")  # enforcement_conduct about squad-1
    assert unit == "legal"
    _, unit, _ = pipeline.order_for("JS12395-2026112200007")  # waterway pollution
    assert unit == "water-1"
    # Plates are normalized before use: the full-width plate is the complaint's vehicle.
    assert pipeline.query("SELECT plate FROM work_order WHERE plate = ?", "苏F3T827") == [("苏F3T827",)] * 2
    # Every order was published and recorded as such.
    assert pipeline.query("SELECT DISTINCT status FROM work_order") == [("dispatched",)]
    assert pipeline.query("SELECT count(*) FROM work_order_event WHERE type = 'dispatched'") == [(orders,)]


def test_dispatched_topic_carries_one_message_per_order_and_recipient(pipeline: Pipeline) -> None:
    records = read_topic(pipeline.bootstrap, DISPATCHED_TOPIC)
    orders = {
        row[0]: row
        for row in pipeline.query("SELECT id, unit, priority, kind, created_at, copied_to FROM work_order")
    }
    # The responsible unit gets the order; units it is copied to (routes with continue) get it too.
    recipients = {order_id: [row[1], *filter(None, row[5].split(","))] for order_id, row in orders.items()}
    assert any(len(units) > 1 for units in recipients.values()), "the samples include a copied order"
    assert len(records) == sum(len(units) for units in recipients.values())

    messages = [json.loads(r.value) for r in records]
    assert Counter(
        (m["work_order_id"], r.key.decode()) for m, r in zip(messages, records, strict=True)
    ) == Counter((order_id, unit) for order_id, units in recipients.items() for unit in units)
    for record, message in zip(records, messages, strict=True):
        _, unit, priority, kind, created_at, _copied = orders[message["work_order_id"]]
        assert message["copied_to"] == recipients[message["work_order_id"]][1:]
        # SQLite holds UTC without an offset; the message carries the same instant with one.
        sent_at = datetime.fromisoformat(message["created_at"])
        assert sent_at == datetime.fromisoformat(created_at).replace(tzinfo=UTC)
        assert message["schema"] == "workorder-dispatched/1"
        assert (message["squad"], message["priority"], message["kind"]) == (unit, priority, kind)
        for field in ("due_at", "created_at", "source_ids", "occurrences", "summary", "subject"):
            assert field in message, field
        assert message["source_ids"]
        for personal in pipeline.expected.complainant_data:
            assert personal not in record.value, "complainant data in a dispatched message"

    night_ban_id, _, _ = pipeline.order_for("JSKV-20261120-000873")
    night_ban = next(m for m in messages if m["work_order_id"] == night_ban_id)
    assert (night_ban["squad"], night_ban["priority"]) == ("squad-1", "P1")
    assert night_ban["subject"]["plate"] == "苏F2C518"
    assert any(s.endswith("JSKV-20261120-000873") for s in night_ban["source_ids"])


def original_bytes(pipeline: Pipeline, letter: dict[str, Any]) -> bytes:
    """The bytes a dead letter stands for: its payload, or (masked) the original the database keeps."""
    if letter["redaction"] == "none":
        return base64.b64decode(letter["payload"])
    (value,) = pipeline.query("SELECT value FROM dead_letter_original WHERE id = ?", letter["original_id"])
    return bytes(value[0])


def test_dead_letter_topic_has_every_rejected_message(pipeline: Pipeline) -> None:
    letters = [json.loads(r.value) for r in read_topic(pipeline.bootstrap, DEAD_LETTERS_TOPIC)]
    inbound = {(r.partition, r.offset): r for r in read_topic(pipeline.bootstrap, ALARMS_TOPIC)}

    got = Counter((original_bytes(pipeline, letter), letter["reason"]) for letter in letters)
    assert got == Counter(pipeline.expected.invalid_payloads)
    # The complaint published on the alarms topic goes out masked: its complainant is not there.
    masked = [letter for letter in letters if letter["redaction"] == "personal_fields"]
    assert [letter["reason"] for letter in masked] == ["wrong_topic"]
    for letter in letters:
        assert letter["schema"] == "dead-letter/1"
        assert letter["detail"]
        source = letter["source"]
        assert source["topic"] == ALARMS_TOPIC
        original = inbound[(source["partition"], source["offset"])]
        assert original.value == original_bytes(pipeline, letter)
        for personal in pipeline.expected.complainant_data:
            assert personal not in base64.b64decode(letter["payload"])
        assert source["key"] == (base64.b64encode(original.key).decode() if original.key else None)
        assert source["timestamp_ms"] == original.timestamp
    bad = [letter for letter in letters if letter["reason"] == "not_utf8"]
    assert len(bad) == 1 and bad[0]["source"]["key"] == base64.b64encode(BAD_UTF8_KEY).decode()


def test_dead_letters_are_keyed_by_the_original_key(pipeline: Pipeline) -> None:
    inbound = {(r.partition, r.offset): r for r in read_topic(pipeline.bootstrap, ALARMS_TOPIC)}
    letters = read_topic(pipeline.bootstrap, DEAD_LETTERS_TOPIC)
    assert letters
    for record in letters:
        source = json.loads(record.value)["source"]
        assert record.key == inbound[(source["partition"], source["offset"])].key


def test_metrics_match_what_was_taken_in(pipeline: Pipeline) -> None:
    text = pipeline.metrics()
    expected = pipeline.expected
    received = metric_samples(text, "wo_signals_received_total")
    assert {dict(labels)["kind"]: value for labels, value in received.items()} == dict(
        expected.valid_lines_by_kind
    )
    rejected = metric_samples(text, "wo_signals_rejected_total")
    assert {(dict(k)["topic"], dict(k)["reason"]): v for k, v in rejected.items()} == {
        (ALARMS_TOPIC, reason): float(count)
        for reason, count in Counter(reason for _, reason in expected.invalid_payloads).items()
    }
    created = metric_samples(text, "wo_work_orders_created_total")
    in_database = pipeline.query("SELECT kind, unit, count(*) FROM work_order GROUP BY kind, unit")
    # Every unit's and kind's series exists from the start, at zero (streams.metrics.initialise).
    assert {(dict(k)["kind"], dict(k)["unit"]): v for k, v in created.items() if v} == {
        (kind, unit): float(count) for kind, unit, count in in_database
    }
    assert metric_total(text, "wo_signals_redelivered_total") == expected.valid_lines - len(
        expected.distinct_ids
    )
    # Labels are closed sets: no plate, name or phone in the exposition.
    for personal in [*expected.complainant_data, "苏F".encode()]:
        assert personal not in text.encode()


def test_logs_hold_no_complainant_data(pipeline: Pipeline) -> None:
    output = pipeline.process.output().encode()
    assert b'"event": "intake_batch"' in output  # structlog writes JSON lines
    for personal in pipeline.expected.complainant_data:
        assert personal not in output


def test_json_log_format_writes_only_json_lines(pipeline: Pipeline) -> None:
    lines = [line for line in pipeline.process.output().splitlines() if line.strip()]
    assert lines
    not_json = []
    for line in lines:
        try:
            document = json.loads(line)
        except ValueError:
            not_json.append(line)
            continue
        if not isinstance(document, dict):
            not_json.append(line)
    assert not_json == [], f"{len(not_json)} of {len(lines)} lines are not JSON, e.g. {not_json[:3]}"


def test_republishing_the_same_files_creates_no_new_order(pipeline: Pipeline) -> None:
    expected = pipeline.expected
    before = pipeline.handled()
    tables = ["work_order", "work_order_source", "work_order_event", "suppressed_signal"]
    snapshot = {table: pipeline.query(f"SELECT * FROM {table} ORDER BY 1") for table in tables}
    dispatched_before = len(read_topic(pipeline.bootstrap, DISPATCHED_TOPIC))
    created_before = metric_samples(pipeline.metrics(), "wo_work_orders_created_total")

    pipeline.publish(*PUBLISH_ARGS)
    pipeline.publish(*NOT_JSON_ARGS)
    pipeline.wait_handled(int(before) + expected.messages - 1)  # all but the hand-made bad UTF-8

    assert {table: pipeline.query(f"SELECT * FROM {table} ORDER BY 1") for table in tables} == snapshot
    assert len(read_topic(pipeline.bootstrap, DISPATCHED_TOPIC)) == dispatched_before
    text = pipeline.metrics()
    assert metric_samples(text, "wo_work_orders_created_total") == created_before
    assert metric_total(text, "wo_signals_redelivered_total") == 2 * expected.valid_lines - len(
        expected.distinct_ids
    )


def test_sigterm_stops_cleanly_and_leaves_no_broker(pipeline: Pipeline) -> None:
    process = pipeline.process
    listener = f"tcp://127.0.0.1:{pipeline.broker_port}"
    brokers = pids_with_cmdline(listener)
    assert len(brokers) == 1, brokers
    assert brokers[0] in children_of(process.pid)  # bin/wo exec'd into wo, which runs the broker

    process.process.send_signal(signal.SIGTERM)
    try:
        code = process.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"wo run still running 20 s after SIGTERM\n{process.tail()}")
    assert code == 0, process.tail()
    wait_for(lambda: not process_alive(brokers[0]), 5, "the broker process to be gone")
    assert pids_with_cmdline(listener) == []
