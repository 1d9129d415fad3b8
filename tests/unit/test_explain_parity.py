"""``wo rules explain`` says what the worker does: for every sample and a few hundred mutated
messages (wrong types, U+0000, huge numbers, old and future times, fields missing or
unknown, broken bytes), explain's verdict equals what ``Intake.handle`` records on an empty
SQLite database, received at the same time, under the same limits.

Each message is explained as received on the topic the worker reads it from (``--topic``);
mutants are sent to the topic of the contract they name, or of the one they came from.
"""

from __future__ import annotations

import copy
import json
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_intake_service import (
    NOW,
    POLICY,
    REFERENCE,
    SAMPLE_TOPICS,
    SAMPLES,
    TOPICS,
    make_intake,
    new_store,
)
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.processors.intake import Rejection
from workorder_pipeline.schemas.inbound import CONTRACTS
from workorder_pipeline.services.intake import InboundMessage, IntakeResult
from workorder_pipeline.services.rules import Explanation, explain

ROOT = Path(__file__).resolve().parents[2]
TOPIC_OF = {contract: topic for topic, contract in TOPICS.inbound().items()}
#: Each contract's event time, the field the age and lead limits look at.
TIME_FIELD = {
    "vehicle-alarm/1": "occurred_at",
    "suspect/1": "list_date",
    "checkin-failure/1": "issued_at",
    "complaint/1": "received_at",
}
MUTANTS = 320
Verdict = tuple[Any, ...]


def sample_lines() -> list[tuple[str, bytes]]:
    """(topic, bytes) of every sample line, invalid ones included."""
    return [
        (topic, line)
        for file, topic in SAMPLE_TOPICS.items()
        for line in (SAMPLES / file).read_bytes().splitlines()
        if line.strip()
    ]


def valid_documents() -> list[dict[str, Any]]:
    documents = []
    for file in ("vehicle-alarms.jsonl", "suspects.jsonl", "checkin-failures.jsonl", "complaints.jsonl"):
        documents += [json.loads(line) for line in (SAMPLES / file).read_bytes().splitlines() if line]
    return documents


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every location of a value in ``value`` (the document itself excluded)."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        yield (*prefix, key)
        yield from _paths(item, (*prefix, key))


def _set(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


def _delete(document: dict[str, Any], path: tuple[Any, ...]) -> None:
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]


def _moment(rng: random.Random) -> datetime:
    """A time around the limits: far and just past 400 days old, just inside or beyond 1 h ahead."""
    return rng.choice(
        [
            NOW
            - timedelta(days=rng.choice([399, 400, 401, 700, 3650]))
            + timedelta(seconds=rng.choice([-1, 1])),
            NOW + timedelta(minutes=rng.choice([30, 59, 61, 402, 6000])),
            NOW + timedelta(hours=6.7),
            datetime(2024, 11, 20, 8, 0).astimezone(),
        ]
    )


def mutate(document: dict[str, Any], rng: random.Random) -> bytes:
    """One deterministic mutation of a valid document (or of its bytes)."""
    doc = copy.deepcopy(document)
    paths = list(_paths(doc))
    path = rng.choice(paths)
    kind = rng.randrange(9)
    if kind == 0:  # a value of another JSON type
        _set(doc, path, rng.choice(["3", 3, 3.5, True, None, [], {}, "yes", ""]))
    elif kind == 1:  # U+0000 in a value or a field name
        if rng.random() < 0.5:
            _set(doc, path, "a\x00b")
        else:
            doc["note\x00"] = "x"
    elif kind == 2:  # numbers no column can hold, and the edge of those it can
        _set(doc, path, rng.choice([2**63, -(2**63) - 1, 2**63 - 1, 10**30, -(2**64)]))
    elif kind in (3, 4):  # old and future event times
        field = TIME_FIELD[doc["schema"]]
        moment = _moment(rng)
        doc[field] = moment.date().isoformat() if field == "list_date" else moment.isoformat()
    elif kind == 5:  # a field missing (the contract's name included)
        _delete(doc, path)
    elif kind == 6:  # unknown fields, nested or not
        doc[f"x_{rng.randrange(1000)}"] = rng.choice([1, "v", {"a": [1, {"b": None}]}, [[[]]], 2**70])
    elif kind == 7:  # another contract's name
        doc["schema"] = rng.choice([*CONTRACTS, "vehicle-alarm/2", 7])
    else:  # broken bytes
        raw = json.dumps(doc, ensure_ascii=False).encode()
        cut = rng.randrange(len(raw))
        return rng.choice(
            [raw[:cut], raw[:cut] + b"\xff" + raw[cut:], b"\xef\xbb\xbf" + raw, b"[" + raw + b"]"]
        )
    return json.dumps(doc, ensure_ascii=False).encode()


def mutated_corpus() -> list[tuple[str, bytes]]:
    rng = random.Random(16)
    documents = valid_documents()
    corpus = []
    for _ in range(MUTANTS):
        document = rng.choice(documents)
        raw = mutate(document, rng)
        corpus.append((_topic_for(raw, TOPIC_OF[document["schema"]]), raw))
    return corpus


def _topic_for(raw: bytes, default: str) -> str:
    """The topic of the contract the message names, if it names one we know."""
    try:
        claimed = json.loads(raw).get("schema")
    except (ValueError, AttributeError):
        return default
    return TOPIC_OF.get(claimed, default) if isinstance(claimed, str) else default


CORPUS = sample_lines() + mutated_corpus()


def worker_verdict(topic: str, raw: bytes) -> Verdict:
    intake = make_intake(new_store())
    result: IntakeResult = intake.handle([InboundMessage(topic, 0, 0, None, raw)], NOW)
    if result.dead_letters:
        return ("dead_letter", result.dead_letters[0].reason.value)
    if result.suppressed:
        (reason,) = result.suppressed
        return ("suppress", reason.value)
    if result.merged:
        return ("merge",)
    (order,) = result.created
    return ("create", order.unit, order.priority.value, order.due_at, order.id)


def explain_verdict(topic: str, raw: bytes) -> Verdict:
    calendar = make_intake(new_store()).calendar
    explained = explain(
        raw, compile_policy(POLICY), REFERENCE, NOW, calendar, contract=TOPICS.inbound()[topic]
    )
    if isinstance(explained, Rejection):
        return ("dead_letter", explained.reason.value)
    assert isinstance(explained, Explanation)
    outcome = explained.outcome
    if outcome.suppression is not None:
        return ("suppress", outcome.suppression.reason.value)
    if outcome.merge_into is not None:
        return ("merge",)
    assert explained.order is not None
    order = explained.order
    return ("create", order.unit, order.priority.value, order.due_at, order.id)


@pytest.mark.parametrize(("topic", "raw"), CORPUS, ids=[f"m{i}" for i in range(len(CORPUS))])
def test_explain_gives_the_verdict_the_worker_records(topic: str, raw: bytes) -> None:
    assert explain_verdict(topic, raw) == worker_verdict(topic, raw)


def test_the_corpus_reaches_every_kind_of_verdict() -> None:
    """The parity above means something only if the corpus reaches each way out."""
    seen = Counter(worker_verdict(topic, raw)[:2] if raw else ("dead_letter",) for topic, raw in CORPUS)
    kinds = {verdict[0] for verdict in seen}
    reasons = {verdict[1] for verdict in seen if verdict[0] in ("dead_letter", "suppress")}
    assert kinds >= {"dead_letter", "suppress", "create"}
    assert reasons >= {
        "implausible_time", "stale", "threshold", "invalid_field", "invalid_character",
        "missing_contract", "unknown_contract", "wrong_topic", "not_json", "not_utf8", "bad_plate",
    }  # fmt: skip


def test_explain_on_the_command_line_agrees_for_an_old_alarm_and_a_future_one(tmp_path: Path) -> None:
    alarm = json.loads((SAMPLES / "vehicle-alarms.jsonl").read_bytes().splitlines()[0])
    at = "2026-11-23T12:00:00+00:00"
    outputs = []
    for name, when in (("old", "2024-11-20T08:12:36+08:00"), ("future", "2026-11-23T18:42:00Z")):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({**alarm, "occurred_at": when}, ensure_ascii=False), encoding="utf-8")
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "workorder_pipeline.wo.cli",
                "rules",
                "explain",
                str(path),
                "--no-state",
                "--at",
                at,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "PYTHONPATH": str(ROOT),
                "WO_LOG_LEVEL": "error",
            },
        )
        outputs.append(done)
    old, future = outputs
    assert old.returncode == 0, old.stderr
    assert "received    2026-11-23 20:00:00+08:00 (--at)" in old.stdout
    assert "occurred 2024-11-20 08:12:36+08:00" in old.stdout
    assert "decision    suppress: suppressed by max_event_age (stale)" in old.stdout
    assert "create" not in old.stdout
    assert future.returncode == 1
    assert "rejected (implausible_time): event time 2026-11-24 02:42:00+08:00 is more than 1:00:00 ahead" in (
        future.stdout
    )
    assert "dead-letter topic" in future.stdout
