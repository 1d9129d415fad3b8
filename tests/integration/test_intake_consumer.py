"""The intake consumer's two stages, in process, on the real broker and a SQLite file.

Batch N is published while batch N+1 is stored. Publishing here is held back by a gate
(the broker, producer and database are real) so that a re-sent alarm arrives while its
first copy's order is still being delivered.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from config.settings import Settings
from schemas.deadletter import DeadLetter
from schemas.workorder import WorkOrder
from services.intake import Intake
from services.policy_files import load_policy, load_reference
from storage.database import create_engine, migrate
from storage.repository import WorkOrderRepository
from streams.intake_consumer import IntakeConsumer
from streams.outputs import Outputs
from tests.integration.pipeline_support import REPO_ROOT, SAMPLES, file_lines, read_topic
from wo.embedded_broker import EmbeddedBroker, ensure_topics

pytestmark = pytest.mark.integration


class HeldOutputs(Outputs):
    """Real outputs whose first publication waits until the test opens the gate."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.gate = asyncio.Event()
        self.publications = 0

    async def publish(self, orders: Iterable[WorkOrder], letters: Iterable[DeadLetter] = ()) -> None:
        self.publications += 1
        if self.publications == 1:
            await self.gate.wait()
        await super().publish(orders, letters)


def _alarm(run: str) -> tuple[bytes, bytes]:
    event = {**json.loads(file_lines(SAMPLES / "vehicle-alarms.jsonl")[0]), "alarm_id": f"IC-{run}"}
    return event["plate"].encode(), json.dumps(event, ensure_ascii=False).encode()


async def _produce(bootstrap: str, topic: str, message: tuple[bytes, bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, message[1], key=message[0])
    finally:
        await producer.stop()


def test_an_alarm_resent_while_its_order_is_being_published_is_dispatched_once(
    kafka_broker: EmbeddedBroker, sqlite_url: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    settings = Settings(
        kafka_bootstrap=kafka_broker.bootstrap,
        consumer_group=f"ic-{run}",
        consumer_fetch_max_wait_ms=20,
        intake_batch_seconds=0.05,
        topics={name: f"ic.{run}.{name}" for name in Settings().topics.model_dump()},
    )
    topics = settings.topics
    ensure_topics(kafka_broker.bootstrap, topics.all(), partitions=1, replication_factor=1)
    migrate(sqlite_url)
    engine = create_engine(sqlite_url)
    reference = load_reference(REPO_ROOT / "policy")
    intake = Intake(
        load_policy(REPO_ROOT / "policy"),
        WorkOrderRepository(engine),
        topics.inbound(),
        reference=lambda: reference,
        max_event_age=timedelta(days=36500),
        max_event_lead=timedelta(days=3650),
    )
    alarm = _alarm(run)

    async def scenario() -> None:
        outputs = HeldOutputs(settings)
        consumer = IntakeConsumer(settings, intake, outputs, lambda: datetime.now(UTC))
        await outputs.start()
        await consumer.start()
        try:
            await _produce(kafka_broker.bootstrap, topics.vehicle_alarms, alarm)
            await _until(lambda: outputs.publications == 1, "the first batch to reach publishing")
            await _produce(kafka_broker.bootstrap, topics.vehicle_alarms, alarm)  # the platform re-sends it
            # The re-sent copy is read and stored while the first copy's order is held.
            await _until(lambda: consumer.batches_stored == 2, "the re-sent copy to be stored")
            outputs.gate.set()
            await _until(lambda: outputs.publications == 2, "the second batch to be published")
            await _until(lambda: consumer.batches_delivered == 2, "both batches to be delivered")
        finally:
            await consumer.stop()
            await outputs.stop()

    try:
        asyncio.run(scenario())
        dispatched = [
            json.loads(r.value)["work_order_id"]
            for r in read_topic(kafka_broker.bootstrap, topics.dispatched)
        ]
        assert len(dispatched) == 1
        assert WorkOrderRepository(engine).count() == 1
    finally:
        engine.dispose()


async def _until(probe: Any, what: str, timeout_s: float = 20) -> None:
    async def poll() -> None:
        while not probe():
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(poll(), timeout_s)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}") from None
