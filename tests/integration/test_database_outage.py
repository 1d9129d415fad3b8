"""The database goes away under a running worker, while events flow: it lives through it,
loses nothing, makes nothing twice, says once that it waits, and resumes within 5 s.

A private PostgreSQL cluster of the test's own is stopped (``-m fast``, ``-m immediate``)
and killed (SIGKILL of the postmaster, a crash); the machine's shared one is not touched.
The outages last 10 s here; bench/outage_drill.py runs the same drill with 30 s ones.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer

from tests.integration.outage_support import Flow, PrivatePostgres, alarm, count_rows, outage
from tests.integration.pipeline_support import (
    REPO_ROOT,
    PipelineProcess,
    committed_offsets,
    end_offsets,
    metric_samples,
    read_topic,
    wait_for,
)
from tests.integration.test_intake_on_broker import TIMEOUT_S, Worker
from workorder_pipeline.services.sender_keys import policy_dir_with_sender, signed_headers
from workorder_pipeline.wo.kafka_cluster import KafkaCluster

pytestmark = [pytest.mark.integration, pytest.mark.outage]

OUTAGE_S = 10.0
RESUME_WITHIN_S = 5.0


@pytest.fixture
def database() -> Iterator[PrivatePostgres]:
    database = PrivatePostgres()
    try:
        database.start()
        yield database
    finally:
        database.close()


@pytest.fixture
def worker(kafka_broker: KafkaCluster, database: PrivatePostgres, tmp_path: Path) -> Iterator[Worker]:
    worker = Worker(kafka_broker.bootstrap, database.url, tmp_path)
    worker.env["WO_ESCALATION_CHECK_SECONDS"] = "2"  # the leader's timer keeps hitting the outages
    try:
        yield worker
    finally:
        worker.close()


def test_three_database_outages_while_events_flow_lose_and_repeat_nothing(
    worker: Worker, database: PrivatePostgres
) -> None:
    process = worker.start()

    def alive() -> bool:
        return process.process.poll() is None

    flow = Flow(worker.bootstrap, worker.alarms_topic, uuid.uuid4().hex[:6])
    flow.start()
    resumed: dict[str, float] = {}
    try:
        wait_for(lambda: count_rows(worker.engine) or None, TIMEOUT_S, "orders", describe=process.tail)
        for mode in ("fast", "immediate", "kill"):
            time.sleep(3)  # events flow between the outages
            resumed[mode] = outage(database, worker.engine, mode, OUTAGE_S, alive)
    finally:
        published = flow.stop()
    print(f"\nintake resumed after the database returned (s): {resumed}; events published: {published}")

    worker.wait_caught_up(process)
    orders = count_rows(worker.engine)
    sources = count_rows(worker.engine, "work_order_source")
    records = read_topic(worker.bootstrap, worker.dispatched_topic)
    dispatched = {json.loads(r.value)["work_order_id"] for r in records}
    print(f"orders {orders}, sources {sources}, distinct orders dispatched {len(dispatched)}")
    assert orders == sources == published  # one order per event: none lost, none twice
    assert len(dispatched) == orders
    assert all(seconds < RESUME_WITHIN_S for seconds in resumed.values()), resumed
    assert alive(), process.tail()

    # Said once per outage and per task, not per retry; counted; waiting no more.
    log = [json.loads(line) for line in process.output().splitlines() if line.startswith("{")]
    waiting = [e for e in log if e.get("event") == "worker_waiting" and e.get("on") == "database"]
    assert {e["task"] for e in waiting} >= {"intake", "escalations"}, waiting
    retries = metric_samples(process.metrics_text(), "wo_worker_retries_total")
    assert retries[(("on", "database"), ("task", "intake"))] >= len(waiting)
    assert len([e for e in waiting if e["task"] == "intake"]) <= 3

    def waiting_for_nothing() -> bool:
        return all(
            value == 0 for value in metric_samples(process.metrics_text(), "wo_worker_waiting").values()
        )

    def what_waits() -> str:
        text = process.metrics_text()
        return "\n".join(line for line in text.splitlines() if line.startswith("wo_worker_")) + process.tail()

    wait_for(waiting_for_nothing, 15, "wo_worker_waiting back to 0", describe=what_waits)
    assert process.stop(signal.SIGTERM) == 0, process.tail()


def test_sigterm_during_a_database_outage_ends_the_worker_within_15_s(
    worker: Worker, database: PrivatePostgres
) -> None:
    run = uuid.uuid4().hex[:6]
    commands_topic = worker.env["WO_TOPICS__COMMANDS"] = f"it.{run}.commands"
    key = policy_dir_with_sender(REPO_ROOT / "policy", worker.tmp / "policy", "tests", ("*",))
    worker.env["WO_POLICY_DIR"] = str(worker.tmp / "policy")
    process = worker.start()
    worker.produce([alarm(run, 0)])
    worker.wait_caught_up(process)  # the group is up
    worker.engine.dispose()
    database.stop("immediate")
    worker.produce([alarm(run, n) for n in range(1, 21)])
    command = {
        "schema": "workorder-command/1",
        "command_id": f"cmd-{run}",
        "work_order_id": "WO-0000000000000000",
        "action": "accept",
        "actor": {"unit": "squad-1", "officer_ids": ["o-1"]},
        "at": datetime.now(UTC).isoformat(),
    }
    producer = KafkaProducer(bootstrap_servers=worker.bootstrap, acks="all", allow_auto_create_topics=False)
    value = json.dumps(command).encode()
    # Signed: the agent gets as far as the database, and fails too.
    producer.send(commands_topic, value=value, headers=signed_headers(key, value)).get(timeout=10)
    producer.close(timeout=5)

    wait_for(
        lambda: waiting_on_database(process),
        TIMEOUT_S,
        "the worker to wait for the database",
        describe=process.tail,
    )
    started = time.monotonic()
    code = process.stop(signal.SIGTERM, timeout_s=30)
    took = time.monotonic() - started
    print(f"\nSIGTERM during a database outage: exit {code} after {took:.1f} s")
    assert code == 0, process.tail()
    assert took < 15, process.tail()


def test_the_lag_gauge_counts_the_messages_waiting_out_an_outage(
    worker: Worker, database: PrivatePostgres
) -> None:
    run = uuid.uuid4().hex[:6]
    process = worker.start()
    worker.produce([alarm(run, n) for n in range(20)])
    worker.wait_caught_up(process)
    worker.engine.dispose()
    database.stop("fast")
    waiting = 1200
    # Half, then (once the worker holds a batch it cannot store) the other half: the
    # consumer's own high-water mark stops moving once it has a batch in hand.
    worker.produce([alarm(run, n) for n in range(20, 620)])
    wait_for(
        lambda: waiting_on_database(process) or None, TIMEOUT_S, "the worker to wait", describe=process.tail
    )
    time.sleep(2)
    worker.produce([alarm(run, n) for n in range(620, 20 + waiting)])

    group, topic = worker.env["WO_CONSUMER_GROUP"], worker.alarms_topic

    def independent_count() -> int:
        """Messages in the topic (read back by another client, kafka-python) minus the group's
        committed offsets. Not ListOffsets: Tansu 0.6.0 answers it with the first offset of
        the newest record batch (see streams/broker_probe)."""
        in_topic = len(read_topic(worker.bootstrap, topic))
        committed = committed_offsets(worker.bootstrap, group, list(end_offsets(worker.bootstrap, [topic])))
        return in_topic - sum(offset or 0 for offset in committed.values())

    def gauge() -> float:
        return metric_samples(process.metrics_text(), "wo_kafka_consumer_lag").get((("topic", topic),), -1)

    def agree() -> float | None:
        value = gauge()
        return value if value == independent_count() else None

    shown = wait_for(
        agree, 30, "the lag gauge to match", describe=lambda: f"{independent_count()}\n{lag_lines(process)}"
    )
    print(
        f"\nlag during the outage: gauge {shown:.0f}, in the topic - committed {independent_count()}, "
        f"published during the outage {waiting}"
    )
    assert shown == waiting  # everything published since the outage began, nothing else


def lag_lines(process: PipelineProcess) -> str:
    text = process.metrics_text()
    return "\n".join(line for line in text.splitlines() if line.startswith("wo_kafka") or "lag" in line)


def waiting_on_database(process: PipelineProcess) -> bool:
    samples = metric_samples(process.metrics_text(), "wo_worker_waiting")
    return samples.get((("on", "database"),), 0) >= 1
