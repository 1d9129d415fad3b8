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
from kafka import KafkaAdminClient, KafkaProducer

from tests.integration.outage_support import Flow, PrivatePostgres, alarm, count_rows, outage
from tests.integration.pipeline_support import end_offsets, metric_samples, read_topic, wait_for
from tests.integration.test_intake_on_broker import TIMEOUT_S, Worker
from wo.embedded_broker import EmbeddedBroker

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
def worker(kafka_broker: EmbeddedBroker, database: PrivatePostgres, tmp_path: Path) -> Iterator[Worker]:
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
    assert all(value == 0 for value in metric_samples(process.metrics_text(), "wo_worker_waiting").values())
    assert process.stop(signal.SIGTERM) == 0, process.tail()


def test_sigterm_during_a_database_outage_ends_the_worker_within_15_s(
    worker: Worker, database: PrivatePostgres
) -> None:
    run = uuid.uuid4().hex[:6]
    commands_topic = worker.env["WO_TOPICS__COMMANDS"] = f"it.{run}.commands"
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
    producer.send(commands_topic, value=json.dumps(command).encode()).get(timeout=10)  # the agent fails too
    producer.close(timeout=5)

    def waiting_on_database() -> bool:
        samples = metric_samples(process.metrics_text(), "wo_worker_waiting")
        return samples.get((("on", "database"),), 0) >= 1

    wait_for(waiting_on_database, TIMEOUT_S, "the worker to wait for the database", describe=process.tail)
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
    waiting = 1200  # more than an intake batch (500): most of them never fetched meanwhile
    worker.produce([alarm(run, n) for n in range(20, 20 + waiting)])

    group, topic = worker.env["WO_CONSUMER_GROUP"], worker.alarms_topic
    admin = KafkaAdminClient(bootstrap_servers=worker.bootstrap, request_timeout_ms=5000)

    def independent_count() -> int:
        """Log end offsets minus the group's committed offsets, asked by another client."""
        ends = end_offsets(worker.bootstrap, [topic])
        committed = admin.list_consumer_group_offsets(group)
        done = sum(int(o.offset) for tp, o in committed.items() if tp.topic == topic)
        return sum(ends.values()) - done

    def gauge() -> float:
        return metric_samples(process.metrics_text(), "wo_kafka_consumer_lag").get((("topic", topic),), -1)

    try:
        wait_for(
            lambda: gauge() == waiting or None, 30, f"the lag gauge to say {waiting}", describe=process.tail
        )
        counted = independent_count()
    finally:
        admin.close()
    print(f"\nlag during the outage: gauge {gauge():.0f}, log end - committed {counted}, published {waiting}")
    assert gauge() == counted == waiting
