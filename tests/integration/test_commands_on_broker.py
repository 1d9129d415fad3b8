"""Lifecycle commands over Kafka: ``wo run`` against the session's broker and PostgreSQL.

Each test has its own ``wo run`` process, consumer group, topic names (commands,
lifecycle and escalations included) and database. Orders are made the real way: an
alarm published on the inbound topic, its order read back from the dispatched topic.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from kafka import KafkaProducer

from tests.integration.pipeline_support import (
    REPO_ROOT,
    SAMPLES,
    PipelineProcess,
    file_lines,
    group_caught_up,
    metric_samples,
    read_topic,
    wait_for,
)
from tests.integration.test_intake_on_broker import TIMEOUT_S, Worker
from workorder_pipeline.config.settings import Settings, Topics
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.schemas.workorder import COMMAND_CENTER
from workorder_pipeline.services.commands import CommandHandler
from workorder_pipeline.services.intake import InboundMessage, Intake
from workorder_pipeline.services.policy_files import load_policy
from workorder_pipeline.services.sender_keys import (
    SigningKey,
    load_senders,
    policy_dir_with_sender,
    signed_headers,
)
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.repository import WorkOrderRepository
from workorder_pipeline.wo.kafka_cluster import KafkaCluster

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

#: Topics the intake Worker does not rename; shared names would mix tests on the broker.
MORE_TOPICS = ("COMMANDS", "LIFECYCLE", "ESCALATIONS")
OFFICERS = ["JS0682-0117", "JS0682-0342"]

Json = dict[str, Any]


@pytest.fixture(scope="module")
def unit_ids() -> frozenset[str]:
    return frozenset(load_policy(REPO_ROOT / "policy").units.ids())


class CommandWorker(Worker):
    """The intake test's Worker, with its own commands, lifecycle and escalations topics too."""

    def __post_init__(self) -> None:
        super().__post_init__()
        run = self.env["WO_TOPICS__DISPATCHED"].split(".")[1]
        self.env.update({f"WO_TOPICS__{name}": f"it.{run}.{name.lower()}" for name in MORE_TOPICS})
        self.process: PipelineProcess | None = None
        # The worker trusts the tests' key (and only the tests put commands on its topic).
        self.policy_dir = self.tmp / "policy"
        self.key: SigningKey = policy_dir_with_sender(REPO_ROOT / "policy", self.policy_dir, "tests", ("*",))
        self.env["WO_POLICY_DIR"] = str(self.policy_dir)

    @property
    def commands_topic(self) -> str:
        return self.env["WO_TOPICS__COMMANDS"]

    @property
    def lifecycle_topic(self) -> str:
        return self.env["WO_TOPICS__LIFECYCLE"]

    @property
    def dead_letters_topic(self) -> str:
        return self.env["WO_TOPICS__DEAD_LETTERS"]

    def describe(self) -> str:
        return self.process.tail() if self.process else "(no wo run process)"

    def run(self) -> PipelineProcess:
        self.process = self.start()
        return self.process

    def headers(self, value: bytes, key: SigningKey | None = None) -> list[tuple[str, bytes]]:
        """Signed with ``key`` (the tests' by default), when the value is a JSON object at all."""
        try:
            return signed_headers(key or self.key, value)
        except ValueError:
            return []

    def send(
        self,
        topic: str,
        messages: list[tuple[bytes, bytes]],
        *,
        signed_by: SigningKey | None = None,
        unsigned: bool = False,
    ) -> None:
        """Commands are signed with the tests' key, or ``signed_by``, or not at all (``unsigned``)."""
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", request_timeout_ms=10_000)
        try:
            futures = [
                producer.send(topic, key=k, value=v, headers=self._sign(topic, v, signed_by, unsigned))
                for k, v in messages
            ]
            for future in futures:
                future.get(timeout=10)
        finally:
            producer.close(timeout=5)

    def _sign(
        self, topic: str, value: bytes, signed_by: SigningKey | None, unsigned: bool
    ) -> list[tuple[str, bytes]]:
        if topic != self.commands_topic or unsigned:
            return []
        return self.headers(value, signed_by or self.key)

    def send_commands(self, *commands: Json) -> None:
        """Commands keyed by work_order_id (the contract's key): one partition, in order."""
        self.send(self.commands_topic, [(c["work_order_id"].encode(), encode(c)) for c in commands])

    def wait_commands_handled(self) -> None:
        """Until the group has committed everything now in the commands topic.

        Offsets are committed only after a batch's effects are stored and its lifecycle,
        dispatched and dead-letter messages acknowledged by the broker.
        """
        group = Settings(consumer_group=self.env["WO_CONSUMER_GROUP"]).commands_consumer_group
        wait_for(
            lambda: group_caught_up(self.bootstrap, group, [self.commands_topic]),
            TIMEOUT_S,
            f"group {group} to commit everything in {self.commands_topic}",
            describe=self.describe,
        )

    def records(self, topic: str) -> list[Any]:
        return read_topic(self.bootstrap, topic)

    def lifecycle(self, order_id: str) -> list[Json]:
        """The order's lifecycle events in topic order; each must be keyed by its work_order_id."""
        events = []
        for record in self.records(self.lifecycle_topic):
            event: Json = json.loads(record.value)
            if event["work_order_id"] == order_id:
                assert record.key == order_id.encode(), event
                assert event["schema"] == "workorder-lifecycle/1", event
                events.append(event)
        return events

    def wait_lifecycle(self, order_id: str, count: int) -> list[Json]:
        def probe() -> list[Json] | None:
            events = self.lifecycle(order_id)
            return events if len(events) >= count else None

        return wait_for(
            probe,
            TIMEOUT_S,
            f"{count} lifecycle events of {order_id}",
            describe=self.describe,
        )

    def dispatched_messages(self, order_id: str) -> list[tuple[bytes, Json]]:
        found = []
        for record in self.records(self.dispatched_topic):
            message: Json = json.loads(record.value)
            if message["work_order_id"] == order_id:
                found.append((record.key, message))
        return found

    def open_order(self) -> Json:
        """Publish one fresh vehicle alarm; return its order's dispatched message once stored as such."""
        template = json.loads(file_lines(SAMPLES / "vehicle-alarms.jsonl")[0])
        plate = f"苏FC{uuid.uuid4().int % 10_000:04d}"
        alarm = {**template, "alarm_id": f"CMD-{uuid.uuid4().hex[:12]}", "plate": plate}
        self.send(self.alarms_topic, [(plate.encode(), encode(alarm))])

        def dispatched() -> Json | None:
            for record in self.records(self.dispatched_topic):
                message: Json = json.loads(record.value)
                if message["subject"].get("plate") == plate:
                    return message
            return None

        message = wait_for(dispatched, TIMEOUT_S, f"the order of alarm {plate}", describe=self.describe)
        # The order is marked dispatched just after its message is acknowledged: a squad
        # acting in between would be refused (invalid_state), so the test waits for it.
        wait_for(
            lambda: self.order(message["work_order_id"])["status"] == "dispatched",
            TIMEOUT_S,
            "the order to be stored as dispatched",
            describe=self.describe,
        )
        return message

    def order(self, order_id: str) -> Json:
        with self.engine.connect() as conn:
            row = conn.execute(sa.text("SELECT * FROM work_order WHERE id = :id"), {"id": order_id})
            return dict(row.mappings().one())

    def audit(self, order_id: str) -> list[Json]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT id, at, type, actor, detail FROM work_order_event "
                    "WHERE work_order_id = :id ORDER BY id"
                ),
                {"id": order_id},
            )
            return [dict(row) for row in rows.mappings()]

    def snapshot(self) -> tuple[list[Json], list[Json], list[Json]]:
        """Every row of work_order, work_order_event and processed_command."""
        with self.engine.connect() as conn:
            return (
                [dict(r) for r in conn.execute(sa.text("SELECT * FROM work_order ORDER BY id")).mappings()],
                [
                    dict(r)
                    for r in conn.execute(sa.text("SELECT * FROM work_order_event ORDER BY id")).mappings()
                ],
                [
                    dict(r)
                    for r in conn.execute(
                        sa.text("SELECT * FROM processed_command ORDER BY command_id")
                    ).mappings()
                ],
            )


@pytest.fixture
def worker(kafka_broker: KafkaCluster, postgres_url: str, tmp_path: Path) -> Iterator[CommandWorker]:
    worker = CommandWorker(kafka_broker.bootstrap, postgres_url, tmp_path)
    try:
        yield worker
    finally:
        worker.close()


def encode(document: Json) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()


def command(
    order_id: str, action: str, unit: str, at: datetime, officers: list[str] | None = None, **fields: Any
) -> Json:
    return {
        "schema": "workorder-command/1",
        "command_id": f"cmd-{uuid.uuid4().hex}",
        "work_order_id": order_id,
        "action": action,
        "actor": {"unit": unit, "officer_ids": officers if officers is not None else [OFFICERS[0]]},
        "at": at.isoformat(),
        **fields,
    }


def field_work(order_id: str, unit: str, start: datetime) -> list[Json]:
    """A squad's whole job on an order: accept, start, feedback, close."""
    return [
        command(order_id, "accept", unit, start),
        command(order_id, "start", unit, start + timedelta(minutes=5)),
        command(
            order_id,
            "feedback",
            unit,
            start + timedelta(minutes=40),
            OFFICERS,
            disposition="rectification_ordered",
            note="整改通知书已送达",
        ),
        command(order_id, "close", unit, start + timedelta(minutes=45), OFFICERS),
    ]


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def other_squad(units: frozenset[str], unit: str) -> str:
    return sorted(u for u in units if u.startswith("squad-") and u != unit)[0]


def test_a_squad_accepts_starts_gives_feedback_and_closes_its_order(worker: CommandWorker) -> None:
    process = worker.run()
    dispatched = worker.open_order()
    order_id, unit = dispatched["work_order_id"], dispatched["squad"]
    start = datetime.now(UTC).replace(microsecond=0)
    commands = field_work(order_id, unit, start)
    worker.send_commands(*commands)

    events = worker.wait_lifecycle(order_id, 4)
    assert [e["event"] for e in events] == ["accepted", "started", "feedback_submitted", "closed"]
    assert [e["status"] for e in events] == ["accepted", "in_progress", "feedback_submitted", "closed"]
    assert [e["command_id"] for e in events] == [c["command_id"] for c in commands]
    assert {(e["actor_unit"], e["unit"]) for e in events} == {(unit, unit)}
    assert [parse_time(e["at"]) for e in events] == [parse_time(c["at"]) for c in commands]
    assert events[3]["detail"] == {"disposition": "rectification_ordered", "on_time": True}

    order = worker.order(order_id)
    assert order["status"] == "closed"
    assert order["unit"] == unit
    assert order["closed_at"] == parse_time(commands[3]["at"])
    assert order["accepted_at"] == start
    assert order["first_feedback_at"] == parse_time(commands[2]["at"])
    assert order["disposition"] == "rectification_ordered"
    assert order["closed_on_time"] is True

    audit = worker.audit(order_id)
    assert [a["type"] for a in audit] == [
        "registered",
        "dispatched",
        "accepted",
        "started",
        "feedback_submitted",
        "closed",
    ]
    lifecycle_audit = audit[2:]
    assert {a["actor"] for a in lifecycle_audit} == {unit}
    assert [a["detail"]["command_id"] for a in lifecycle_audit] == [c["command_id"] for c in commands]
    assert lifecycle_audit[2]["detail"]["officer_ids"] == sorted(OFFICERS)
    assert lifecycle_audit[3]["detail"]["officer_ids"] == sorted(OFFICERS)

    expected = {(("action", action),): 1.0 for action in ("accept", "start", "feedback", "close")}
    wait_for(
        lambda: metric_samples(process.metrics_text(), "wo_commands_applied_total") == expected,
        TIMEOUT_S,
        f"wo_commands_applied_total to be {expected}",
        describe=worker.describe,
    )


def test_a_resent_close_command_has_no_second_effect(worker: CommandWorker) -> None:
    worker.run()
    dispatched = worker.open_order()
    order_id, unit = dispatched["work_order_id"], dispatched["squad"]
    commands = field_work(order_id, unit, datetime.now(UTC).replace(microsecond=0))
    worker.send_commands(*commands)
    worker.wait_lifecycle(order_id, 4)
    before = worker.snapshot()
    lifecycle_before = worker.lifecycle(order_id)

    worker.send_commands(commands[3])  # the same close, same command_id, byte for byte
    worker.wait_commands_handled()

    assert worker.snapshot() == before
    assert worker.lifecycle(order_id) == lifecycle_before
    assert [e["event"] for e in lifecycle_before].count("closed") == 1


def test_a_command_from_another_unit_is_refused(worker: CommandWorker, unit_ids: frozenset[str]) -> None:
    worker.run()
    dispatched = worker.open_order()
    order_id, unit = dispatched["work_order_id"], dispatched["squad"]
    stranger = other_squad(unit_ids, unit)
    now = datetime.now(UTC).replace(microsecond=0)
    before = worker.order(order_id)
    audit_before = worker.audit(order_id)
    refused = [
        command(order_id, "accept", "squad-9", now),  # no such unit
        command(order_id, "accept", stranger, now),  # a real squad, not the order's
        command(order_id, "close", stranger, now, OFFICERS, disposition="unfounded"),
    ]
    worker.send_commands(*refused)

    events = worker.wait_lifecycle(order_id, len(refused))
    assert len(events) == len(refused)
    for event, sent in zip(events, refused, strict=True):
        assert event["event"] == "command_rejected"
        assert event["command_id"] == sent["command_id"]
        assert event["actor_unit"] == sent["actor"]["unit"]
        assert event["status"] == "dispatched"
        assert event["unit"] == unit
        assert event["detail"]["code"] == "forbidden"
        assert event["detail"]["action"] == sent["action"]

    assert worker.order(order_id) == before
    audit = worker.audit(order_id)
    assert audit[: len(audit_before)] == audit_before
    added = audit[len(audit_before) :]
    assert [(a["type"], a["actor"]) for a in added] == [
        ("command_rejected", c["actor"]["unit"]) for c in refused
    ]
    assert [(a["detail"]["command_id"], a["detail"]["code"]) for a in added] == [
        (c["command_id"], "forbidden") for c in refused
    ]


def test_undecodable_commands_are_dead_lettered_and_unknown_orders_refused(worker: CommandWorker) -> None:
    process = worker.run()
    now = datetime.now(UTC).replace(microsecond=0)
    not_json = b'{"schema": "workorder-command/1", "command_id": '
    no_actor = command("WO-20261119-000001", "accept", "squad-1", now)
    del no_actor["actor"]
    unknown = command("WO-NO-SUCH-ORDER", "accept", "squad-1", now)
    worker.send(
        worker.commands_topic,
        [
            (b"bad-1", not_json),
            (b"WO-20261119-000001", encode(no_actor)),
            (b"WO-NO-SUCH-ORDER", encode(unknown)),
        ],
    )

    def dead_letters() -> dict[bytes, tuple[bytes, Json]] | None:
        found = {}
        for record in worker.records(worker.dead_letters_topic):
            letter: Json = json.loads(record.value)
            found[base64.b64decode(letter["payload"])] = (record.key, letter)
        return found if len(found) >= 2 else None

    letters = wait_for(dead_letters, TIMEOUT_S, "two dead letters", describe=worker.describe)
    assert set(letters) == {not_json, encode(no_actor)}
    key, letter = letters[not_json]
    assert (key, letter["reason"], letter["source"]["topic"]) == (b"bad-1", "not_json", worker.commands_topic)
    key, letter = letters[encode(no_actor)]
    assert (key, letter["reason"], letter["source"]["topic"]) == (
        b"WO-20261119-000001",
        "invalid_field",
        worker.commands_topic,
    )
    assert "actor" in letter["detail"]

    events = worker.wait_lifecycle("WO-NO-SUCH-ORDER", 1)
    (event,) = events
    assert (event["event"], event["command_id"], event["status"], event["unit"]) == (
        "command_rejected",
        unknown["command_id"],
        None,
        None,
    )
    assert event["detail"]["code"] == "unknown_order"
    assert worker.lifecycle("WO-20261119-000001") == []
    orders, audit, _processed = worker.snapshot()
    assert orders == [] and audit == []

    expected = {(("reason", reason),): 1.0 for reason in ("not_json", "invalid_field", "unknown_order")}
    wait_for(
        lambda: metric_samples(process.metrics_text(), "wo_commands_rejected_total") == expected,
        TIMEOUT_S,
        f"wo_commands_rejected_total to be {expected}",
        describe=worker.describe,
    )


def test_a_returned_order_is_reassigned_by_the_command_center(
    worker: CommandWorker, unit_ids: frozenset[str]
) -> None:
    worker.run()
    dispatched = worker.open_order()
    order_id, unit = dispatched["work_order_id"], dispatched["squad"]
    target = other_squad(unit_ids, unit)
    returned_at = datetime.now(UTC).replace(microsecond=0)
    reassigned_at = returned_at + timedelta(seconds=90)
    give_back = command(order_id, "return", unit, returned_at, reason="misrouted", note="not our domain")
    reassign = command(order_id, "reassign", COMMAND_CENTER, reassigned_at, to_unit=target)
    worker.send_commands(give_back, reassign)

    events = worker.wait_lifecycle(order_id, 2)
    assert [(e["event"], e["status"], e["unit"]) for e in events] == [
        ("returned", "returned", COMMAND_CENTER),
        ("reassigned", "dispatched", target),
    ]
    assert events[0]["detail"] == {"reason": "misrouted", "returned_by": unit}
    assert events[1]["detail"]["to"] == target
    assert events[1]["detail"]["paused_seconds"] == 90

    # Published again, keyed by the new squad; the time spent returned is not charged.
    def redispatched() -> list[tuple[bytes, Json]] | None:
        found = worker.dispatched_messages(order_id)
        return found if len(found) >= 2 else None

    messages = wait_for(
        redispatched,
        TIMEOUT_S,
        f"{order_id} to be dispatched again",
        describe=worker.describe,
    )
    assert [(key, message["squad"]) for key, message in messages] == [
        (unit.encode(), unit),
        (target.encode(), target),
    ]
    first_due = parse_time(messages[0][1]["due_at"])
    assert parse_time(messages[1][1]["due_at"]) == first_due + timedelta(seconds=90)

    order = worker.order(order_id)
    assert (order["status"], order["unit"], order["returned_at"]) == ("dispatched", target, None)
    assert order["returned_seconds"] == 90
    assert order["due_at"] == first_due + timedelta(seconds=90)
    assert [(a["type"], a["actor"]) for a in worker.audit(order_id)][2:] == [
        ("returned", unit),
        ("reassigned", COMMAND_CENTER),
    ]


def test_events_of_commands_stored_before_a_crash_are_published_on_redelivery(
    worker: CommandWorker, unit_ids: frozenset[str]
) -> None:
    """A worker that died between committing a command batch and publishing its events.

    Its offsets were never committed, so the commands are delivered again to the next
    worker: the lifecycle events and the re-dispatch must then reach their topics.
    """
    policy = load_policy(REPO_ROOT / "policy")
    template = json.loads(file_lines(SAMPLES / "vehicle-alarms.jsonl")[0])
    plate = f"苏FD{uuid.uuid4().int % 10_000:04d}"
    alarm = {**template, "alarm_id": f"CRASH-{uuid.uuid4().hex[:12]}", "plate": plate}
    migrate(worker.database_url)
    engine = create_engine(worker.database_url)
    try:
        repository = WorkOrderRepository(engine)
        intake = Intake(
            compile_policy(policy), repository, Topics(vehicle_alarms=worker.alarms_topic).inbound()
        )
        now = datetime.now(UTC).replace(microsecond=0)
        created = intake.handle(
            [InboundMessage(worker.alarms_topic, 0, 0, plate.encode(), encode(alarm))], now
        ).created
        assert len(created) == 1
        intake.dispatched(created, now)
        order_id, unit = created[0].id, created[0].unit
        target = other_squad(unit_ids, unit)
        sent = [
            command(order_id, "return", unit, now, reason="misrouted"),
            command(order_id, "reassign", COMMAND_CENTER, now + timedelta(seconds=30), to_unit=target),
        ]
        messages = [(order_id.encode(), encode(c)) for c in sent]
        # What the crashed worker did: the batch's transaction committed, nothing published.
        senders = load_senders(worker.policy_dir, unit_ids)
        stored = CommandHandler(repository, unit_ids, policy.lifecycle, senders).handle(
            [
                InboundMessage(worker.commands_topic, 0, n, key, value, None, tuple(worker.headers(value)))
                for n, (key, value) in enumerate(messages)
            ],
            now,
        )
        assert [o.outcome for o in stored.outcomes] == ["applied", "applied"]
    finally:
        engine.dispose()
    assert (worker.order(order_id)["status"], worker.order(order_id)["unit"]) == ("dispatched", target)

    worker.run()
    worker.send(worker.commands_topic, messages)  # the re-delivery of the uncommitted batch
    worker.wait_commands_handled()

    def published() -> list[str] | None:
        by_command = {e["command_id"]: e["event"] for e in worker.lifecycle(order_id)}
        return [by_command[c["command_id"]] for c in sent] if len(by_command) == len(sent) else None

    # Published before the offsets are committed; a little grace for a publisher at start-up.
    events = wait_for(published, 2, "the lifecycle events of the stored commands", describe=worker.describe)
    assert events == ["returned", "reassigned"]
    assert [(key, m["squad"]) for key, m in worker.dispatched_messages(order_id)][-1:] == [
        (target.encode(), target)
    ]


def test_a_command_with_u0000_or_one_the_database_refuses_does_not_stop_the_next_command(
    worker: CommandWorker, unit_ids: frozenset[str]
) -> None:
    """Sent straight to the topic, not through the API: a note with U+0000 (PostgreSQL
    cannot store it) and an order id longer than its column (only the database knows)."""
    worker.run()
    dispatched = worker.open_order()
    order_id, unit = dispatched["work_order_id"], dispatched["squad"]
    stranger = other_squad(unit_ids, unit)
    now = datetime.now(UTC).replace(microsecond=0)
    with_nul = command(order_id, "accept", stranger, now, note="on my way\x00")
    too_long = command("WO-" + "9" * 100, "accept", stranger, now)
    accept = command(order_id, "accept", unit, now)
    key = order_id.encode()  # one partition: the commands are handled in this order
    worker.send(worker.commands_topic, [(key, encode(c)) for c in (with_nul, too_long, accept)])

    (accepted,) = worker.wait_lifecycle(order_id, 1)
    assert (accepted["event"], accepted["command_id"]) == ("accepted", accept["command_id"])
    worker.wait_commands_handled()
    assert worker.order(order_id)["status"] == "accepted"
    letters = [json.loads(record.value) for record in worker.records(worker.dead_letters_topic)]
    assert [(letter["reason"], letter["source"]["topic"]) for letter in letters] == [
        ("invalid_character", worker.commands_topic),
        ("unprocessable", worker.commands_topic),
    ]
    assert [base64.b64decode(letter["payload"]) for letter in letters] == [encode(with_nul), encode(too_long)]
    assert letters[1]["detail"] == "handling it failed: DataError(StringDataRightTruncation)"
