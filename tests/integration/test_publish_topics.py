"""No client of ours makes the embedded broker create a topic (Tansu creates any topic a
request asks it to): ``wo publish`` to a topic that does not exist sends nothing and says so
in one line, and neither kafka-python producer of ours asks for auto-creation."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaTimeoutError

from tests.integration.pipeline_support import clean_env
from workorder_pipeline.config.settings import Settings
from workorder_pipeline.schemas.commands import Actor, CommandAction, WorkOrderCommand
from workorder_pipeline.services.ports import CommandNotPublished
from workorder_pipeline.services.sender_keys import new_signing_key
from workorder_pipeline.streams.kafka.admin import ensure_topics, open_admin
from workorder_pipeline.streams.kafka.producers import KafkaCommandPublisher, file_producer
from workorder_pipeline.wo.embedded_broker import EmbeddedBroker

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"


def unique(name: str) -> str:
    return f"{name}.{uuid.uuid4().hex[:8]}"


def topics_on(broker: EmbeddedBroker) -> set[str]:
    admin = open_admin(broker.bootstrap, 5, {})
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def end_offsets(broker: EmbeddedBroker, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def wo_publish(broker: EmbeddedBroker, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(WO_KAFKA_BOOTSTRAP=broker.bootstrap, **settings)
    return subprocess.run(
        [str(ROOT / ".venv" / "bin" / "wo"), "publish", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_publishing_to_a_topic_that_does_not_exist_sends_nothing_and_creates_nothing(
    tansu_broker: EmbeddedBroker,
) -> None:
    typo = unique("no.such.topic")
    done = wo_publish(tansu_broker, "--topic", typo, str(SAMPLES / "vehicle-alarms.jsonl"))
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr == (
        f"wo publish: topic {typo!r} does not exist on the broker at {tansu_broker.bootstrap}; "
        "nothing sent (`wo run` creates the pipeline's topics: check --topic)\n"
    )
    assert typo not in topics_on(tansu_broker)


def test_one_missing_topic_stops_every_file_before_any_is_sent(tansu_broker: EmbeddedBroker) -> None:
    alarms, complaints = unique("alarms"), unique("complaints")
    ensure_topics(tansu_broker.bootstrap, [alarms], partitions=2, replication_factor=1)
    done = wo_publish(
        tansu_broker,
        str(SAMPLES / "vehicle-alarms.jsonl"),
        str(SAMPLES / "complaints.jsonl"),
        WO_TOPICS__VEHICLE_ALARMS=alarms,
        WO_TOPICS__COMPLAINTS=complaints,
    )
    assert done.returncode == 1 and f"topic {complaints!r} does not exist" in done.stderr, done.stderr
    assert end_offsets(tansu_broker, alarms) == 0  # the first file, whose topic exists, was not sent
    assert complaints not in topics_on(tansu_broker)
    # Once the topic is there, the same command sends both files.
    ensure_topics(tansu_broker.bootstrap, [complaints], partitions=2, replication_factor=1)
    done = wo_publish(
        tansu_broker,
        str(SAMPLES / "vehicle-alarms.jsonl"),
        str(SAMPLES / "complaints.jsonl"),
        WO_TOPICS__VEHICLE_ALARMS=alarms,
        WO_TOPICS__COMPLAINTS=complaints,
    )
    assert done.returncode == 0, done.stderr
    assert f"vehicle-alarms.jsonl: 13 sent to {alarms}\n" in done.stdout
    assert f"complaints.jsonl: 6 sent to {complaints}\n" in done.stdout
    assert end_offsets(tansu_broker, alarms) > 0


def test_the_file_producer_never_makes_the_broker_create_a_topic(tansu_broker: EmbeddedBroker) -> None:
    missing = unique("file.producer")
    producer = file_producer(Settings(kafka_bootstrap=tansu_broker.bootstrap))
    try:
        with pytest.raises(KafkaTimeoutError):  # waits max_block_ms for a topic that never comes
            producer.send(missing, b"{}")
    finally:
        producer.close(timeout=2)
    assert missing not in topics_on(tansu_broker)


def test_the_api_publisher_never_makes_the_broker_create_the_commands_topic(
    tansu_broker: EmbeddedBroker,
) -> None:
    missing = unique("commands")
    publisher = KafkaCommandPublisher(tansu_broker.bootstrap, missing, new_signing_key("t"), timeout_s=1)
    command = WorkOrderCommand(
        command_id=unique("c"),
        work_order_id="WO-VA-1",
        action=CommandAction.accept,
        actor=Actor(unit="squad-1", officer_ids=["a"]),
        at=datetime.now(UTC),
    )
    try:
        with pytest.raises(CommandNotPublished):
            publisher.publish(command)
    finally:
        publisher.close()
    assert missing not in topics_on(tansu_broker)
