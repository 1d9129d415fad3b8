"""``wo run --processes 2``: two worker processes from one command, on a real broker and
PostgreSQL. They share the partitions, every alarm becomes exactly one order, SIGTERM stops
them all cleanly, and a child that dies ends the command with exit code 1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.integration.pipeline_support import (
    SAMPLES,
    PipelineProcess,
    children_of,
    file_lines,
    group_caught_up,
    metric_total,
    process_alive,
    wait_for,
)
from tests.integration.test_intake_on_broker import TIMEOUT_S, WO, Worker
from workorder_pipeline.wo.embedded_broker import free_port
from workorder_pipeline.wo.kafka_cluster import KafkaCluster

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

PARTITIONS = 6
ALARMS = 120
ALARM = json.loads(file_lines(SAMPLES / "vehicle-alarms.jsonl")[0])


@pytest.fixture
def worker(kafka_broker: KafkaCluster, postgres_url: str, tmp_path: Path) -> Iterator[Worker]:
    worker = Worker(kafka_broker.bootstrap, postgres_url, tmp_path)
    worker.env["WO_TOPIC_PARTITIONS"] = str(PARTITIONS)
    # Two consecutive ports: the parent gives child K WO_METRICS_PORT + K.
    worker.env["WO_METRICS_PORT"] = str(consecutive_free_ports())
    try:
        yield worker
    finally:
        worker.close()


def consecutive_free_ports() -> int:
    """A port P with P + 1 free too (a moment ago)."""
    for _ in range(50):
        port = free_port()
        if port < 65535 and port_free(port + 1):
            return port
    raise AssertionError("no two consecutive free ports")


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_processes(worker: Worker, env: dict[str, str] | None = None) -> PipelineProcess:
    port = int(worker.env["WO_METRICS_PORT"])
    run_env = env if env is not None else worker.env
    process = PipelineProcess.start([str(WO), "run", "--processes", "2"], run_env, worker.tmp / "run", port)
    worker.processes.append(process)
    process.wait_metrics(TIMEOUT_S)
    return process


def assignments(process: PipelineProcess, topic: str) -> dict[int, set[str]]:
    """Each child's (JSON log field ``process``) last assignment of ``topic``."""
    found: dict[int, set[str]] = {}
    for line in process.output().splitlines():
        if line.startswith("{") and '"intake_partitions_assigned"' in line:
            event = json.loads(line)
            found[event["process"]] = {p for p in event.get("partitions", []) if p.startswith(f"{topic}/")}
    return found


def metrics_of_child(worker: Worker, index: int) -> str:
    port = int(worker.env["WO_METRICS_PORT"]) + index
    return PipelineProcess(worker.processes[0].process, Path(), Path(), port).metrics_text()


def test_two_processes_share_the_partitions_and_open_one_order_per_alarm(worker: Worker) -> None:
    parent = start_processes(worker)
    topic = worker.alarms_topic

    def split_between_both() -> bool:
        held = assignments(parent, topic)
        mine, theirs = held.get(0, set()), held.get(1, set())
        return bool(mine and theirs and not mine & theirs and len(mine | theirs) == PARTITIONS)

    wait_for(split_between_both, TIMEOUT_S, "both processes to hold partitions", describe=parent.tail)
    messages = []
    for n in range(ALARMS):
        plate = f"苏FP{n:04d}"  # distinct vehicles: each alarm opens its own order
        event = {**ALARM, "alarm_id": f"MP-{n:04d}", "plate": plate}
        messages.append((plate.encode(), json.dumps(event, ensure_ascii=False).encode()))
    worker.produce(messages)
    group = worker.env["WO_CONSUMER_GROUP"]
    wait_for(
        lambda: group_caught_up(worker.bootstrap, group, [topic]),
        TIMEOUT_S,
        "the group to commit everything produced",
        describe=parent.tail,
    )

    received = [metric_total(metrics_of_child(worker, k), "wo_signals_received_total") for k in (0, 1)]
    with worker.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT dedupe_key, occurrences FROM work_order")).all()
    per_vehicle = Counter(row[0] for row in rows)
    assert all(count > 0 for count in received), f"each process must have taken part: {received}"
    assert sum(received) == ALARMS
    assert len(rows) == ALARMS
    assert len(per_vehicle) == ALARMS and set(per_vehicle.values()) == {1}
    assert all(row[1] == 1 for row in rows), "an alarm was counted twice"

    children = children_of(parent.pid)
    assert len([pid for pid in children if process_alive(pid)]) >= 2, children
    assert parent.stop(signal.SIGTERM, timeout_s=60) == 0, parent.tail()
    assert not [pid for pid in children if process_alive(pid)], "a worker process outlived the command"
    assert "worker_process_stopped" in parent.output()


def test_a_worker_process_that_dies_ends_the_command_with_an_error(worker: Worker) -> None:
    parent = start_processes(worker)
    wait_for(lambda: len(children_of(parent.pid)) >= 2, TIMEOUT_S, "two worker processes")
    first, second = children_of(parent.pid)[:2]
    os.kill(first, signal.SIGKILL)
    code = parent.process.wait(timeout=60)
    assert code == 1, parent.tail()
    assert not process_alive(second), "the other worker process was left running"
    assert "意外退出" in parent.output()
    assert '"worker_process_exited"' in parent.output()
