"""``wo run`` on the session's broker: messages that used to halt all intake now stop nothing.

A tombstone, an alarm with an unknown integer beyond 64 bits and an alarm with U+0000 in
its id, published once among valid alarms on one partition, used to make the worker retry
its batch forever (every partition it held stopped). Now they are dead letters with their
reasons and every valid alarm after them becomes an order, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.pipeline_support import SAMPLES, file_lines, metric_samples, read_topic, wait_for
from tests.integration.test_intake_on_broker import TIMEOUT_S, Worker
from workorder_pipeline.wo.embedded_broker import EmbeddedBroker

pytestmark = pytest.mark.integration

KEY = b"one-partition"  # one key: one partition, consumed in the order published
VALID_AFTER = 100


@pytest.fixture
def worker(kafka_broker: EmbeddedBroker, database_url: str, tmp_path: Path) -> Iterator[Worker]:
    worker = Worker(kafka_broker.bootstrap, database_url, tmp_path)
    try:
        yield worker
    finally:
        worker.close()


def alarm(run: str, n: int, **changes: object) -> dict[str, object]:
    template = json.loads(file_lines(SAMPLES / "vehicle-alarms.jsonl")[0])
    return {**template, "alarm_id": f"H-{run}-{n:03d}", "plate": f"苏FH{n:04d}", **changes}


def encode(document: dict[str, object]) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()


def test_a_tombstone_a_huge_integer_and_a_nul_stop_no_valid_alarm_after_them(worker: Worker) -> None:
    run = uuid.uuid4().hex[:6]
    huge = encode(alarm(run, 901))[:-1] + b', "x": 100000000000000000000}'
    bad: list[tuple[bytes, bytes | None]] = [
        (KEY, None),  # a tombstone
        (KEY, huge),
        (KEY, encode(alarm(run, 902, alarm_id=f"H-{run}-\x00-902"))),
    ]
    valid_before: list[tuple[bytes, bytes | None]] = [(KEY, encode(alarm(run, n))) for n in range(5)]
    valid_after: list[tuple[bytes, bytes | None]] = [
        (KEY, encode(alarm(run, n))) for n in range(5, 5 + VALID_AFTER)
    ]
    process = worker.start()
    worker.produce([*valid_before, *bad, *valid_after])
    worker.wait_caught_up(process)

    assert worker.orders() == len(valid_before) + VALID_AFTER
    dead_letters = read_topic(worker.bootstrap, worker.env["WO_TOPICS__DEAD_LETTERS"])
    letters = [json.loads(record.value) for record in dead_letters]
    assert [letter["reason"] for letter in letters] == ["empty_message", "invalid_field", "invalid_character"]
    assert [letter["source"]["offset"] for letter in letters] == [5, 6, 7]
    assert [base64.b64decode(letter["payload"]) for letter in letters] == [
        b"",
        *(value for _, value in bad[1:]),
    ]
    wait_for(
        lambda: (
            {
                dict(labels)["reason"]: value
                for labels, value in metric_samples(
                    process.metrics_text(), "wo_signals_rejected_total"
                ).items()
            }
            == {"empty_message": 1.0, "invalid_field": 1.0, "invalid_character": 1.0}
        ),
        TIMEOUT_S,
        "the three rejections to be counted",
        describe=process.tail,
    )
