"""The embedded Tansu broker, against real processes and real Kafka clients (no mocks)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from workorder_pipeline.streams.kafka.admin import TopicSetupError, ensure_topics
from workorder_pipeline.wo.embedded_broker import BrokerStartError, EmbeddedBroker, free_port

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def _topic(prefix: str) -> str:
    return f"test.{prefix}.{uuid.uuid4().hex[:8]}"


def _alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (dead, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X")


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return not _alive(pid)


def test_broker_answers_metadata(tansu_broker: EmbeddedBroker) -> None:
    assert tansu_broker.running
    host, _, port = tansu_broker.bootstrap.rpartition(":")
    assert host == "127.0.0.1"
    admin = KafkaAdminClient(bootstrap_servers=tansu_broker.bootstrap, request_timeout_ms=5000)
    try:
        cluster = admin.describe_cluster()
        assert isinstance(admin.list_topics(), list)
    finally:
        admin.close()
    # The broker advertises the loopback address it listens on.
    assert [(b["host"], b["port"]) for b in cluster["brokers"]] == [("127.0.0.1", int(port))]


def test_ensure_topics_creates_requested_partitions_and_is_idempotent(
    tansu_broker: EmbeddedBroker,
) -> None:
    topics = [_topic("a"), _topic("b")]

    created = ensure_topics(tansu_broker.bootstrap, topics, partitions=3, replication_factor=1)
    assert created == topics

    consumer = KafkaConsumer(bootstrap_servers=tansu_broker.bootstrap, group_id=None)
    try:
        for topic in topics:
            assert consumer.partitions_for_topic(topic) == {0, 1, 2}
    finally:
        consumer.close()

    again = ensure_topics(tansu_broker.bootstrap, [*topics, topics[0]], 3, 1, timeout_s=10)
    assert again == []
    # A partial overlap creates only the missing one.
    extra = _topic("c")
    assert ensure_topics(tansu_broker.bootstrap, [topics[1], extra], 3, 1) == [extra]


def test_ensure_topics_rejects_what_kafka_would(tansu_broker: EmbeddedBroker) -> None:
    # Tansu itself accepts these; production Kafka does not, so we refuse up front.
    with pytest.raises(ValueError, match="partitions"):
        ensure_topics(tansu_broker.bootstrap, [_topic("p")], partitions=0, replication_factor=1)
    with pytest.raises(ValueError, match="invalid topic name"):
        ensure_topics(tansu_broker.bootstrap, ["bad name!"], partitions=1, replication_factor=1)
    with pytest.raises(TopicSetupError, match="replication_factor 3"):
        ensure_topics(tansu_broker.bootstrap, [_topic("r")], partitions=1, replication_factor=3)


def test_ensure_topics_names_the_unreachable_bootstrap() -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(TopicSetupError, match=bootstrap):
        ensure_topics(bootstrap, ["x"], partitions=1, replication_factor=1, timeout_s=1)
    assert time.monotonic() - started < 5


def test_produced_message_is_consumed_back(tansu_broker: EmbeddedBroker) -> None:
    topic = _topic("roundtrip")
    ensure_topics(tansu_broker.bootstrap, [topic], partitions=1, replication_factor=1)

    producer = KafkaProducer(bootstrap_servers=tansu_broker.bootstrap, request_timeout_ms=5000)
    try:
        producer.send(topic, key=b"k1", value=b'{"hello": "\xe4\xb8\x96\xe7\x95\x8c"}').get(timeout=5)
    finally:
        producer.close(timeout=5)

    consumer = KafkaConsumer(
        bootstrap_servers=tansu_broker.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
        fetch_max_wait_ms=100,
        request_timeout_ms=5000,
    )
    try:
        consumer.assign([TopicPartition(topic, 0)])
        records = []
        for record in consumer:
            records.append(record)
            break
    finally:
        consumer.close()
    assert [(r.key, r.value, r.offset) for r in records] == [
        (b"k1", b'{"hello": "\xe4\xb8\x96\xe7\x95\x8c"}', 0)
    ]


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    log_path = tmp_path / "broker.log"
    broker = EmbeddedBroker(log_path=log_path)
    with broker:
        pid = broker.pid
        assert pid is not None and _alive(pid)
        # It leads its own process group.
        assert os.getpgid(pid) == pid
    assert not broker.running
    assert broker.pid is None
    assert not _alive(pid)
    broker.stop()  # idempotent
    # The port is free again and the broker wrote its output to the log file.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", broker.port))
    assert log_path.stat().st_size > 0


def test_start_fails_clearly_when_port_taken() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(BrokerStartError, match=f"127.0.0.1:{port} is already in use"):
            EmbeddedBroker(port=port, start_timeout_s=5).start()


def test_start_reports_broker_output_when_it_dies(tmp_path: Path) -> None:
    log_path = tmp_path / "broker.log"
    # `false`-like binary: the broker exits immediately and the error says so.
    fake = tmp_path / "fake-tansu"
    fake.write_text("#!/bin/sh\necho 'boom: cannot start' >&2\nexit 3\n")
    fake.chmod(0o755)
    broker = EmbeddedBroker(log_path=log_path, binary=str(fake), start_timeout_s=5)
    with pytest.raises(BrokerStartError, match=r"(?s)exited with code 3.*boom: cannot start"):
        broker.start()
    assert not broker.running


def test_broker_dies_when_its_parent_is_sigkilled() -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from workorder_pipeline.wo.embedded_broker import EmbeddedBroker
        broker = EmbeddedBroker(start_timeout_s=10).start()
        print(f"BROKER_PID={broker.pid}", flush=True)
        time.sleep(60)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    broker_pid: int | None = None
    try:
        assert parent.stdout is not None
        seen = []
        for line in parent.stdout:  # structlog may print its own lines first
            seen.append(line)
            if line.startswith("BROKER_PID="):
                broker_pid = int(line.removeprefix("BROKER_PID="))
                break
        assert broker_pid is not None, f"child did not report a broker pid: {seen!r}"
        assert _alive(broker_pid)

        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=5)

        assert _wait_gone(broker_pid, timeout_s=5), "broker outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
        if broker_pid is not None and _alive(broker_pid):
            os.kill(broker_pid, signal.SIGKILL)


def test_the_broker_stops_at_once_with_clients_connected_and_restarts_on_its_port(tmp_path: Path) -> None:
    """Stopping used to wait 5 s (Tansu waits for clients on SIGTERM) and end in SIGKILL, and
    restarting right away failed with "already in use" (the stopped broker's TIME_WAIT
    connections, seen by a port probe without SO_REUSEADDR)."""
    port = free_port()
    broker = EmbeddedBroker(port, log_path=tmp_path / "broker.log").start()
    ensure_topics(broker.bootstrap, ["held-open"], partitions=1, replication_factor=1)
    consumer = KafkaConsumer("held-open", bootstrap_servers=broker.bootstrap, group_id="g-held-open")
    try:
        consumer.poll(timeout_ms=1000)
        process = broker._process
        assert process is not None
        started = time.monotonic()
        broker.stop()
        stopped_s = time.monotonic() - started
        assert process.returncode == 0, f"exit {process.returncode}: it was killed, not stopped"
        assert stopped_s < 3, f"stopping took {stopped_s:.1f} s"
        with EmbeddedBroker(port, log_path=tmp_path / "again.log") as again:
            assert again.running
    finally:
        consumer.close(autocommit=False)
