"""The consumer's fetch wait bounds an event's time to ``workorders.dispatched``.

Two ``wo run`` workers on the session's Tansu broker, each with its own topics, group and
SQLite file: one with faust's 1,500 ms fetch wait (``WO_CONSUMER_FETCH_MAX_WAIT_MS=1500``,
what faust hard-codes), one with 100 ms. Single alarms are sent to them in turns, a random
pause apart, each once the previous one was dispatched; an event's latency is the
dispatched record's timestamp minus the alarm's (both stamped by their producers on this
machine). Both run at the same time under the same load, so the ratio of their medians is
what is asserted, not a time. Both flush intake batches after 50 ms (default 200 ms): the
batch window adds the same random delay to both, which would only blur the comparison.
"""

from __future__ import annotations

import json
import random
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.integration.pipeline_support import (
    REPO_ROOT,
    SAMPLES,
    PipelineProcess,
    clean_env,
    file_lines,
    wait_for,
)
from workorder_pipeline.wo.embedded_broker import EmbeddedBroker, free_port

pytestmark = pytest.mark.integration

WO = REPO_ROOT / ".venv" / "bin" / "wo"
EVENTS = 10
START_TIMEOUT_S = 60  # start, then the group join (~5 s with the embedded broker's settings)
EVENT_TIMEOUT_S = 20
TOPICS = (
    "VEHICLE_ALARMS",
    "SUSPECTS",
    "CHECKIN_FAILURES",
    "COMPLAINTS",
    "DISPATCHED",
    "DEAD_LETTERS",
    "COMMANDS",
    "LIFECYCLE",
    "ESCALATIONS",
)


class LatencyWorker:
    """One ``wo run`` with its own topics and group, and a reader of its dispatched topic."""

    def __init__(self, bootstrap: str, fetch_max_wait_ms: int, tmp: Path) -> None:
        run = f"{fetch_max_wait_ms}-{uuid.uuid4().hex[:8]}"
        self.bootstrap = bootstrap
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.run = run
        self.logs = tmp / f"wait-{fetch_max_wait_ms}"
        self.env = clean_env(
            WO_KAFKA_BOOTSTRAP=bootstrap,
            WO_DATABASE_URL=f"sqlite:///{tmp}/wo-{fetch_max_wait_ms}.db",
            WO_DATA_DIR=str(self.logs / "data"),
            WO_CONSUMER_GROUP=f"it-latency-{run}",
            WO_METRICS_PORT=str(free_port()),
            WO_LOG_FORMAT="json",
            WO_TOPIC_PARTITIONS="1",
            WO_CONSUMER_FETCH_MAX_WAIT_MS=str(fetch_max_wait_ms),
            WO_INTAKE_BATCH_SECONDS="0.05",
            **{f"WO_TOPICS__{name}": f"it.lat.{run}.{name.lower().replace('_', '-')}" for name in TOPICS},
        )
        self.process: PipelineProcess | None = None
        self.reader: KafkaConsumer | None = None
        self.sent_ms: dict[str, int] = {}
        self.latencies_ms: list[float] = []

    @property
    def alarms_topic(self) -> str:
        return self.env["WO_TOPICS__VEHICLE_ALARMS"]

    def start(self) -> None:
        self.process = PipelineProcess.start(
            [str(WO), "run"], self.env, self.logs, int(self.env["WO_METRICS_PORT"])
        )

    def open_reader(self) -> None:
        """Read the dispatched topic from its start (the topic exists once the worker is up)."""
        assert self.process is not None
        self.process.wait_metrics(START_TIMEOUT_S)
        # The observer's own fetch wait only delays the test, not the measured latency
        # (both timestamps are set by the producers), but keep it short anyway.
        self.reader = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
            request_timeout_ms=10_000,
        )
        topic = self.env["WO_TOPICS__DISPATCHED"]
        reader = self.reader
        wait_for(lambda: reader.partitions_for_topic(topic), 10, f"partitions of {topic}", 0.05)
        partition = TopicPartition(topic, 0)
        self.reader.assign([partition])
        self.reader.seek_to_beginning(partition)

    def send(self, producer: KafkaProducer, n: int) -> str:
        template = json.loads(file_lines(SAMPLES / "vehicle-alarms.jsonl")[0])
        alarm_id = f"LAT-{self.run}-{n:03d}"
        plate = f"苏FL{n:04d}"  # a vehicle of its own: every alarm makes a new order
        event = {
            **template,
            "alarm_id": alarm_id,
            "plate": plate,
            "occurred_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
        }
        sent_ms = int(time.time() * 1000)
        producer.send(
            self.alarms_topic,
            key=plate.encode(),
            value=json.dumps(event, ensure_ascii=False).encode(),
            timestamp_ms=sent_ms,
        ).get(timeout=10)
        self.sent_ms[alarm_id] = sent_ms
        return alarm_id

    def wait_dispatched(self, alarm_id: str, timeout_s: float) -> float:
        """The alarm's latency to the dispatched topic, in ms."""
        assert self.reader is not None and self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for records in self.reader.poll(timeout_ms=100).values():
                for record in records:
                    # A vehicle alarm's source id is "<platform_id>/<alarm_id>".
                    source_ids = json.loads(record.value)["source_ids"]
                    if any(source_id.endswith(f"/{alarm_id}") for source_id in source_ids):
                        return float(record.timestamp - self.sent_ms[alarm_id])
        raise AssertionError(
            f"alarm {alarm_id} not dispatched within {timeout_s:g} s "
            f"(fetch wait {self.fetch_max_wait_ms} ms)\n{self.process.tail()}"
        )

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
        if self.process is not None:
            code = self.process.stop(signal.SIGTERM)
            assert code == 0, self.process.tail()


@pytest.fixture
def workers(tansu_broker: EmbeddedBroker, tmp_path: Path) -> Iterator[tuple[LatencyWorker, LatencyWorker]]:
    faust_s = LatencyWorker(tansu_broker.bootstrap, 1500, tmp_path)
    ours = LatencyWorker(tansu_broker.bootstrap, 100, tmp_path)
    try:
        faust_s.start()
        ours.start()
        faust_s.open_reader()
        ours.open_reader()
        yield faust_s, ours
    finally:
        for worker in (faust_s, ours):
            worker.close()


def test_a_shorter_fetch_wait_brings_single_events_out_faster(
    workers: tuple[LatencyWorker, LatencyWorker],
) -> None:
    faust_s, ours = workers
    producer = KafkaProducer(bootstrap_servers=faust_s.bootstrap, acks="all", linger_ms=0)
    rng = random.Random(7)
    try:
        # A first alarm each: once it is dispatched, the worker has joined its group.
        for worker in workers:
            worker.wait_dispatched(worker.send(producer, 0), START_TIMEOUT_S)
        for n in range(1, EVENTS + 1):
            for worker in workers:
                # A random pause: the alarms must not fall into step with the fetch cycle.
                time.sleep(rng.uniform(0, 0.3))
                worker.latencies_ms.append(worker.wait_dispatched(worker.send(producer, n), EVENT_TIMEOUT_S))
    finally:
        producer.close(timeout=5)

    slow, fast = median(faust_s.latencies_ms), median(ours.latencies_ms)
    report = (
        f"median event->dispatched: {slow:.0f} ms with 1500 ms, {fast:.0f} ms with 100 ms "
        f"(1500: {sorted(faust_s.latencies_ms)}; 100: {sorted(ours.latencies_ms)})"
    )
    print(report)
    assert all(latency >= 0 for latency in faust_s.latencies_ms + ours.latencies_ms), report
    assert fast < 0.5 * slow, report
