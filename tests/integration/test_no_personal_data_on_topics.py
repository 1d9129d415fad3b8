"""No complainant's name or phone on any topic the pipeline writes, whatever was sent.

``wo run`` on the session's Apache Kafka and each database takes the bundled samples and
hostile complaints (valid and invalid, on the complaints topic and on others) carrying a
distinctive name and phone. Then every message of every topic the broker holds is read:
neither appears in any value, key or header, in clear, JSON-escaped, or inside a base64
field, except on the topics the test itself published to (the publishers' own). The
originals of the masked dead letters are in the database, served to the command center only.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer

from tests.integration.pipeline_support import SAMPLES, file_lines, group_caught_up, read_topic, wait_for
from tests.integration.test_commands_on_broker import CommandWorker, Json, command, encode
from tests.integration.test_intake_on_broker import TIMEOUT_S
from workorder_pipeline.api.app import create_app
from workorder_pipeline.api.auth import Role, TokenEntry, Tokens, hash_token, new_token
from workorder_pipeline.services.sender_keys import new_signing_key
from workorder_pipeline.storage.api_store import ApiStore
from workorder_pipeline.storage.database import create_engine
from workorder_pipeline.streams.kafka.producers import KafkaCommandPublisher
from workorder_pipeline.wo.kafka_cluster import KafkaCluster

pytestmark = pytest.mark.integration

NAME = "慕容雪芙"
PHONE = "13600006178"
#: How the name and phone may be written: as sent, JSON-escaped, with separators.
NEEDLES = [
    NAME.encode(),
    json.dumps(NAME)[1:-1].encode(),
    PHONE.encode(),
    b"136-0000-6178",
    b"136 0000 6178",
]
SAMPLE_FILES = {
    "vehicle-alarms.jsonl": "VEHICLE_ALARMS",
    "suspects.jsonl": "SUSPECTS",
    "checkin-failures.jsonl": "CHECKIN_FAILURES",
    "complaints.jsonl": "COMPLAINTS",
    "invalid.jsonl": "VEHICLE_ALARMS",
    "not-json.txt": "VEHICLE_ALARMS",
}
#: Where publishers put their messages (the personal data there is theirs to send).
PUBLISHERS_TOPICS = (
    "vehicle-alarms",
    "suspects",
    "checkin-failures",
    "complaints",
    "commands",
)
_BASE64 = re.compile(rb"[A-Za-z0-9+/]{8,}={0,2}")


@pytest.fixture
def worker(kafka_broker: KafkaCluster, database_url: str, tmp_path: Path) -> Iterator[CommandWorker]:
    worker = CommandWorker(kafka_broker.bootstrap, database_url, tmp_path)
    try:
        yield worker
    finally:
        worker.close()


def complaint(run: str, n: int, **changes: Any) -> Json:
    template: Json = json.loads(file_lines(SAMPLES / "complaints.jsonl")[0])
    return {
        **template,
        "ticket_id": f"PII-{run}-{n}",
        "complainant": {"name": NAME, "phone": PHONE},
        **changes,
    }


def hostile_complaints(run: str) -> list[bytes | None]:
    """Complaints carrying NAME and PHONE every way we could think of; only the first is valid."""
    valid = complaint(run, 0, summary=f"我是{NAME}，司机绕路，请回电 136-0000-6178 或 {PHONE}")
    truncated = encode(complaint(run, 2))[:-20]
    return [
        encode(valid),
        encode(complaint(run, 1, urgent="yes", summary=f"{NAME} {PHONE}")),
        truncated,
        encode(complaint(run, 3)).replace(NAME.encode(), NAME.encode() + b"\x00"),  # raw NUL: not JSON
        encode(complaint(run, 4, complainant={"name": f"{NAME}\x00", "phone": PHONE})),  # \u0000
        encode(complaint(run, 5))[:40] + b"\xff\xfe" + encode(complaint(run, 5))[40:],  # not UTF-8
        encode(complaint(run, 6, summary=f"{NAME}{PHONE}" * 2_000)),  # over the summary's limit
        encode(complaint(run, 7, schema=f"{NAME} {PHONE}", complainant={"name": f"{NAME} {PHONE}"})),
        encode(complaint(run, 8, complainant={PHONE: {"name": [NAME]}, "phone": int(PHONE)}, urgent=1)),
        f"投诉人 {NAME} 电话 {PHONE}".encode(),
        json.dumps([complaint(run, 10)], ensure_ascii=False).encode(),
        # A duplicate key (the detail names it), the key being the complainant's phone.
        f'{{"{PHONE}": 1, "{PHONE}": 2, "complainant": {{"name": "{NAME}", "phone": "{PHONE}"}}}}'.encode(),
        json.dumps(complaint(run, 12, urgent="no")).encode(),  # ASCII-escaped JSON
        None,  # a tombstone
    ]


def publish_everything(worker: CommandWorker, run: str) -> tuple[list[bytes], int]:
    """The samples, the hostile complaints (on the complaints topic, the alarms topic and the
    commands topic); returns what may be personal and how many dead letters to expect."""
    for file, setting in SAMPLE_FILES.items():
        lines = file_lines(SAMPLES / file)
        worker.send(
            worker.env[f"WO_TOPICS__{setting}"], [(f"{file}-{i}".encode(), v) for i, v in enumerate(lines)]
        )
    hostile = hostile_complaints(run)
    complaints_topic = worker.env["WO_TOPICS__COMPLAINTS"]
    worker.send(complaints_topic, [(f"PII-{run}-{i}".encode(), value) for i, value in enumerate(hostile)])  # type: ignore[misc]
    astray = encode(complaint(run, 99, urgent="yes"))
    worker.send(worker.alarms_topic, [(b"PII-astray", astray)])
    worker.send(worker.commands_topic, [(b"PII-astray", astray)], unsigned=True)
    samples_rejected = len(file_lines(SAMPLES / "invalid.jsonl")) + len(file_lines(SAMPLES / "not-json.txt"))
    sent = [value for value in hostile if value is not None] + [astray]
    return sent, samples_rejected + (len(hostile) - 1) + 2


def wait_all_handled(worker: CommandWorker) -> None:
    group = worker.env["WO_CONSUMER_GROUP"]
    inbound = [worker.env[f"WO_TOPICS__{s}"] for s in set(SAMPLE_FILES.values())]
    wait_for(
        lambda: group_caught_up(worker.bootstrap, group, inbound),
        TIMEOUT_S,
        "intake",
        describe=worker.describe,
    )
    worker.wait_commands_handled()


def every_topic(bootstrap: str) -> list[str]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, exclude_internal_topics=False, request_timeout_ms=5000
    )
    try:
        return sorted(consumer.topics())
    finally:
        consumer.close()


def personal_in(raw: bytes | None, depth: int = 0) -> list[bytes]:
    """The needles found in ``raw``, or in anything in it that decodes as base64."""
    if not raw:
        return []
    found = [needle for needle in NEEDLES if needle in raw]
    if depth < 2:
        for candidate in _BASE64.findall(raw):
            try:
                decoded = base64.b64decode(candidate + b"=" * (-len(candidate) % 4), validate=True)
            except (binascii.Error, ValueError):
                continue
            found += personal_in(decoded, depth + 1)
    return found


def command_center_api(database_url: str) -> tuple[TestClient, dict[str, dict[str, str]]]:
    tokens = {"command_center": new_token(), "squad-1": new_token(), "supervisor": new_token()}
    far = datetime(2100, 1, 1, tzinfo=UTC)
    entries = [
        TokenEntry(
            name="duty", role=Role.command_center, sha256=hash_token(tokens["command_center"]), expires_at=far
        ),
        TokenEntry(
            name="s1", role=Role.unit, unit="squad-1", sha256=hash_token(tokens["squad-1"]), expires_at=far
        ),
        TokenEntry(name="sup", role=Role.supervisor, sha256=hash_token(tokens["supervisor"]), expires_at=far),
    ]
    unused = KafkaCommandPublisher("127.0.0.1:9", "unused", new_signing_key("unused"))
    app = create_app(ApiStore(create_engine(database_url)), Tokens(entries), unused)
    return TestClient(app), {who: {"Authorization": f"Bearer {token}"} for who, token in tokens.items()}


def test_no_topic_carries_a_complainants_name_or_phone_and_the_originals_are_the_command_centers(
    worker: CommandWorker, database_url: str
) -> None:
    run = uuid.uuid4().hex[:8]
    worker.run()
    sent, expected_letters = publish_everything(worker, run)
    wait_all_handled(worker)

    # The valid hostile complaint became an order: act on it so the lifecycle topic has traffic.
    order = wait_for(
        lambda: next(
            (
                json.loads(r.value)
                for r in read_topic(worker.bootstrap, worker.dispatched_topic)
                if f"PII-{run}-0" in " ".join(json.loads(r.value)["source_ids"])
            ),
            None,
        ),
        TIMEOUT_S,
        "the valid hostile complaint's order",
        describe=worker.describe,
    )
    assert "***" in order["summary"]
    wait_for(lambda: worker.order(order["work_order_id"])["status"] == "dispatched", TIMEOUT_S, "dispatched")
    worker.send_commands(command(order["work_order_id"], "accept", order["squad"], datetime.now(UTC)))
    wait_all_handled(worker)
    worker.wait_lifecycle(order["work_order_id"], 1)

    letters = [json.loads(r.value) for r in read_topic(worker.bootstrap, worker.dead_letters_topic)]
    assert len(letters) == expected_letters

    # Every topic but the publishers' (this run's, and any other test's on the session's broker).
    scanned = [topic for topic in every_topic(worker.bootstrap) if not topic.endswith(PUBLISHERS_TOPICS)]
    assert {worker.dead_letters_topic, worker.dispatched_topic, worker.lifecycle_topic} <= set(scanned)
    leaks = []
    for topic in scanned:
        for record in read_topic(worker.bootstrap, topic, timeout_s=30):
            parts = [
                record.value,
                record.key,
                *(name.encode() + b"=" + value for name, value in record.headers),
            ]
            for part in parts:
                if found := personal_in(part):
                    leaks.append((topic, record.partition, record.offset, found))
    assert leaks == []

    # Every message that carried them and was rejected is kept whole, for the command center only.
    client, headers = command_center_api(database_url)
    with client:
        kept = {}
        for letter in letters:
            if letter["original_id"] is None:
                continue
            read = client.get(
                f"/dead-letters/{letter['original_id']}/original", headers=headers["command_center"]
            )
            assert read.status_code == 200, read.text
            kept[base64.b64decode(read.json()["value"])] = letter
            missing_id = "dl-" + "0" * 32
            for who in ("squad-1", "supervisor"):
                answer = client.get(f"/dead-letters/{letter['original_id']}/original", headers=headers[who])
                missing = client.get(f"/dead-letters/{missing_id}/original", headers=headers[who])
                assert answer.status_code == missing.status_code == 404
                assert answer.text.replace(letter["original_id"], missing_id) == missing.text
        rejected = [value for value in sent if value != sent[0]]
        assert set(rejected) <= set(kept)
