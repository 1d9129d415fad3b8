"""Property: whatever hostile messages a batch holds, every message ends as exactly one of
order, merge, suppression, known re-delivery or dead letter, and the valid ones end as they
would have alone.

Valid events are the bundled samples under fresh publisher ids (sometimes with harmless
unknown fields, sometimes re-sent); hostile ones are the same events mutated by a type
swap, U+0000 in a value or a field name, an integer beyond 64 bits, deep nesting, too many
fields, an oversized value, a tombstone or an empty value. Each batch goes through the real
intake service on a real database ("mixed"); each of its valid events goes, alone, through
a second intake on a second database of the same kind ("alone"), in the same order. Both
databases see the same valid events, so their states stay comparable from one example to
the next.
"""

from __future__ import annotations

import copy
import itertools
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from sqlalchemy.engine import Engine

from tests.conftest import POSTGRES_ADMIN_DSN
from tests.integration.pipeline_support import REPO_ROOT, SAMPLES, file_lines
from workorder_pipeline.config.settings import Topics
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.processors.intake import INT64_MAX, INT64_MIN, MAX_DEPTH, MAX_OBJECT_FIELDS
from workorder_pipeline.schemas.deadletter import RejectionReason
from workorder_pipeline.services.intake import InboundMessage, Intake, IntakeResult
from workorder_pipeline.services.policy_files import load_policy, load_reference
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.repository import WorkOrderRepository

pytestmark = pytest.mark.integration

TOPICS = Topics()
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
MAX_BYTES = 64 * 1024  # room for MAX_OBJECT_FIELDS + 1 fields, below the oversized ones
SAMPLE_FILES = {
    "vehicle-alarms.jsonl": (TOPICS.vehicle_alarms, "alarm_id"),
    "suspects.jsonl": (TOPICS.suspects, "entry_id"),
    "checkin-failures.jsonl": (TOPICS.checkin_failures, "check_id"),
    "complaints.jsonl": (TOPICS.complaints, "ticket_id"),
}
#: (topic, id field, event) of every valid sample.
TEMPLATES = [
    (topic, id_field, json.loads(line))
    for name, (topic, id_field) in SAMPLE_FILES.items()
    for line in file_lines(SAMPLES / name)
]
#: Per id field: fields whose value, swapped for another JSON type, the contract refuses.
TYPE_SWAPS: dict[str, dict[str, list[Any]]] = {
    "alarm_id": {
        "level": [True, "3", 3.0, None],
        "speed_kmh": ["98", True],
        "alarm_id": [123],
        "plate": [12345],
        "occurred_at": [1_732_600_000],
    },
    "entry_id": {"window_days": ["7", True], "pass_count": ["93"], "list_date": [20261121]},
    "check_id": {"answer_window_s": ["600", False], "enterprise": ["91320682MA1N2K3L6T"]},
    "ticket_id": {"urgent": ["yes", 1, "true"], "summary": [42], "channel": [12328]},
}
HOSTILE = ("type_swap", "nul_value", "nul_key", "huge_int", "deep", "many_fields", "oversized", "tombstone")
EXPECTED = {
    "type_swap": {RejectionReason.invalid_field, RejectionReason.bad_plate},
    "nul_value": {RejectionReason.invalid_character},
    "nul_key": {RejectionReason.invalid_character},
    "huge_int": {RejectionReason.invalid_field},
    "deep": {RejectionReason.too_complex},
    "many_fields": {RejectionReason.too_complex},
    "oversized": {RejectionReason.too_large},
    "tombstone": {RejectionReason.empty_message},
}
storable = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(INT64_MIN, INT64_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from("abc"), children),
    max_leaves=8,
)

#: What the property runs met, over every example of the session (reported by the test).
SEEN: Counter[str] = Counter()
_tags = itertools.count()


@dataclass(frozen=True)
class Planned:
    """One message of a batch: what it is made of and what it must become."""

    mutation: str  # "valid", "resent" or one of HOSTILE
    topic: str
    value: bytes | None


def with_nul(document: dict[str, Any], draw: st.DrawFn) -> dict[str, Any]:
    """U+0000 inside one string value, anywhere in the document (nested ones included)."""
    paths: list[list[Any]] = []

    def walk(value: Any, path: list[Any]) -> None:
        if isinstance(value, str):
            paths.append(path)
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, [*path, key])
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, [*path, index])

    walk(document, [])
    path = draw(st.sampled_from(paths))
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    text = target[path[-1]]
    cut = draw(st.integers(0, len(text)))
    target[path[-1]] = text[:cut] + "\x00" + text[cut:]
    return document


@st.composite
def planned_message(draw: st.DrawFn, tag: str, n: int, earlier: list[Planned]) -> Planned:
    topic, id_field, template = draw(st.sampled_from(TEMPLATES))
    event = copy.deepcopy(template)
    event[id_field] = f"P{tag}-{n}"
    if draw(st.booleans()):  # harmless unknown fields are kept, not refused
        event["x_" + draw(st.sampled_from(["meta", "sn", "ext"]))] = draw(storable)
    mutation = draw(st.sampled_from(["valid", "valid", "resent", *HOSTILE]))
    valid_before = [p for p in earlier if p.mutation == "valid"]
    if mutation == "resent" and valid_before:
        again = draw(st.sampled_from(valid_before))
        return Planned("resent", again.topic, again.value)
    if mutation in ("valid", "resent"):
        return Planned("valid", topic, json.dumps(event, ensure_ascii=False).encode())
    if mutation == "tombstone":
        return Planned(mutation, topic, draw(st.sampled_from([None, b""])))
    if mutation == "type_swap":
        field, values = draw(st.sampled_from(sorted(TYPE_SWAPS[id_field].items())))
        event[field] = draw(st.sampled_from(values))
    elif mutation == "nul_value":
        event = with_nul(event, draw)
    elif mutation == "nul_key":
        event[draw(st.sampled_from(["", "k", "device_sn"])) + "\x00"] = draw(storable)
    elif mutation == "huge_int":
        huge = draw(st.integers(INT64_MAX + 1, 10**40) | st.integers(-(10**40), INT64_MIN - 1))
        event["x_n"] = draw(st.sampled_from([huge, [huge], {"deep": {"er": huge}}]))
    elif mutation == "deep":
        nested: Any = draw(storable)
        for _ in range(draw(st.integers(MAX_DEPTH, MAX_DEPTH + 30))):
            nested = draw(st.sampled_from([[nested], {"a": nested}]))
        event["x_deep"] = nested
    elif mutation == "many_fields":
        event["x_many"] = {f"k{i}": i for i in range(draw(st.integers(MAX_OBJECT_FIELDS + 1, 1_200)))}
    elif mutation == "oversized":
        event["x_blob"] = "字" * draw(st.integers(MAX_BYTES // 3 + 1, MAX_BYTES // 3 + 1000))
    return Planned(mutation, topic, json.dumps(event, ensure_ascii=False).encode())


@st.composite
def batches(draw: st.DrawFn) -> tuple[str, list[Planned]]:
    tag = f"{next(_tags)}{uuid.uuid4().hex[:6]}"
    planned: list[Planned] = []
    for n in range(draw(st.integers(1, 12))):
        planned.append(draw(planned_message(tag, n, planned)))
    return tag, planned


def make_intake(engine: Engine) -> Intake:
    reference = load_reference(REPO_ROOT / "policy")
    return Intake(
        compile_policy(load_policy(REPO_ROOT / "policy")),
        WorkOrderRepository(engine),
        TOPICS.inbound(),
        reference=lambda: reference,
        max_message_bytes=MAX_BYTES,
        max_event_lead=timedelta(days=3650),
    )


def outcomes(engine: Engine, tag: str) -> dict[str, tuple[Any, ...]]:
    """Source key of each stored signal of the example -> what it became: the order it is a
    source of (with the order's unit, priority, route, occurrences and due time) or its
    suppression reason."""
    like = f"%P{tag}-%"
    with engine.connect() as conn:
        found: dict[str, tuple[Any, ...]] = {
            row.source_key: (
                "order",
                row.id,
                row.unit,
                row.priority,
                row.route_key,
                row.occurrences,
                row.due_at,
            )
            for row in conn.execute(
                sa.text(
                    "SELECT s.source_key, o.id, o.unit, o.priority, o.route_key, o.occurrences, o.due_at "
                    "FROM work_order_source s JOIN work_order o ON o.id = s.work_order_id "
                    "WHERE s.source_key LIKE :like"
                ),
                {"like": like},
            )
        }
        for row in conn.execute(
            sa.text("SELECT source_key, reason FROM suppressed_signal WHERE source_key LIKE :like"),
            {"like": like},
        ):
            assert row.source_key not in found, f"{row.source_key} is both an order's source and suppressed"
            found[row.source_key] = ("suppressed", row.reason)
    return found


def handled(result: IntakeResult) -> int:
    return (
        len(result.created)
        + sum(result.merged.values())
        + sum(result.suppressed.values())
        + sum(result.redelivered.values())
        + len(result.dead_letters)
    )


@pytest.fixture
def twin_engines(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    """Two migrated databases of the backend under test: "mixed" and "alone"."""
    backend = request.param
    if backend == "sqlite":
        urls = [f"sqlite:///{tmp_path}/mixed.db", f"sqlite:///{tmp_path}/alone.db"]
        extra: str | None = None
    else:
        mixed = request.getfixturevalue("postgres_url")
        extra = f"wo_test_alone_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(extra)))
        urls = [mixed, mixed.rsplit("/", 1)[0] + f"/{extra}"]
    engines = []
    try:
        for url in urls:
            migrate(url)
            engines.append(create_engine(url))
        yield engines[0], engines[1]
    finally:
        for engine in engines:
            engine.dispose()
        if extra is not None:
            with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(extra))
                )


@pytest.mark.parametrize(
    "twin_engines", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_hostile_neighbours_change_nothing_for_valid_messages(twin_engines: tuple[Engine, Engine]) -> None:
    mixed_engine, alone_engine = twin_engines
    mixed_intake, alone_intake = make_intake(mixed_engine), make_intake(alone_engine)
    SEEN.clear()

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(batches())
    def property_holds(example: tuple[str, list[Planned]]) -> None:
        tag, planned = example
        messages = [InboundMessage(p.topic, 0, offset, b"key", p.value) for offset, p in enumerate(planned)]
        result = mixed_intake.handle(messages, NOW)

        # Every message ends as exactly one outcome; exactly the hostile ones as dead letters.
        assert handled(result) == len(messages)
        letters = {letter.source.offset: letter.reason for letter in result.dead_letters}
        assert len(letters) == len(result.dead_letters)
        hostile = {offset: p.mutation for offset, p in enumerate(planned) if p.mutation in HOSTILE}
        assert set(letters) == set(hostile)
        for offset, mutation in hostile.items():
            assert letters[offset] in EXPECTED[mutation], (mutation, result.dead_letters)

        # The valid ones end as they end alone, in the same order, one batch each.
        for offset, p in enumerate(planned):
            if p.mutation not in HOSTILE:
                alone_intake.handle([InboundMessage(p.topic, 0, offset, b"key", p.value)], NOW)
        mixed, alone = outcomes(mixed_engine, tag), outcomes(alone_engine, tag)
        # One stored outcome per distinct valid event (a re-sent one is the same event).
        assert len(mixed) == len({p.value for p in planned if p.mutation not in HOSTILE})
        assert mixed == alone
        SEEN.update(p.mutation for p in planned)
        SEEN["examples"] += 1

    property_holds()
    hostile_total = sum(SEEN[m] for m in HOSTILE)
    print(f"\nintake property: {SEEN['examples']} batches, {hostile_total} hostile messages {dict(SEEN)}")
    assert hostile_total > 0 and all(SEEN[m] for m in HOSTILE), SEEN
