"""Apache Kafka (KRaft) on 127.0.0.1 for tests, benchmarks and failure drills.

The broker comes from Maven Central as a dependency of ``deploy/kafka/pom.xml`` (the one
place its version is pinned); :func:`kafka_classpath` copies its runtime classpath into
``var/kafka/lib`` once per pom. :class:`KafkaCluster` formats KRaft storage for 1 or more
nodes (each both broker and controller, a static voter set), starts ``kafka.Kafka`` per
node as a child process that dies with us (``PR_SET_PDEATHSIG``), and can kill, stop and
restart single nodes for drills. ``bin/wo run`` does not use this: it runs the embedded
broker (Tansu) unless ``WO_KAFKA_BOOTSTRAP`` names a cluster.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Self

import structlog
from kafka.errors import KafkaError

from workorder_pipeline.streams.kafka.admin import open_admin
from workorder_pipeline.wo.children import spawn_child
from workorder_pipeline.wo.embedded_broker import HOST, BrokerStartError, EmbeddedBroker, free_ports

__all__ = [
    "BrokerKind",
    "KafkaCluster",
    "KafkaNode",
    "Partition",
    "RunningBroker",
    "kafka_classpath",
    "kafka_version",
    "running_broker",
]

log = structlog.get_logger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
POM = REPO_ROOT / "deploy" / "kafka" / "pom.xml"
DEFAULT_LIB_DIR = REPO_ROOT / "var" / "kafka" / "lib"
START_TIMEOUT_S = 90.0
STOP_GRACE_S = 15.0
# Small heaps and C1 only: several brokers share two cores with the tests.
JVM_OPTIONS = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)
_LOG4J2 = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.file.ref = file
logger.state.name = state.change.logger
logger.state.level = warn
"""


def kafka_version() -> str:
    """The Apache Kafka version pinned in deploy/kafka/pom.xml."""
    found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text(encoding="utf-8"))
    if found is None:
        raise BrokerStartError(f"{POM}: no <kafka.version> property")
    return found.group(1)


def kafka_classpath(lib_dir: Path | None = None) -> Path:
    """The folder holding the broker's jars, filled by Maven on first use (per pom digest).

    ``WO_KAFKA_LIB_DIR`` overrides the folder (for a cache shared between checkouts).
    """
    lib = lib_dir or Path(os.environ.get("WO_KAFKA_LIB_DIR", DEFAULT_LIB_DIR))
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:16]
    stamp = lib / f".resolved-{digest}"
    if stamp.exists():
        return lib
    if shutil.which("mvn") is None or shutil.which("java") is None:
        raise BrokerStartError("Apache Kafka needs Java 17 and Maven (`mvn`) on PATH; neither may be missing")
    shutil.rmtree(lib, ignore_errors=True)
    started = time.monotonic()
    command = ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies", f"-Dkafka.lib.dir={lib}"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrokerStartError(
            f"resolving Apache Kafka with Maven failed:\n{result.stdout[-3000:]}{result.stderr[-2000:]}"
        )
    stamp.touch()
    log.info("kafka classpath resolved", lib=str(lib), seconds=round(time.monotonic() - started, 1))
    return lib


@dataclass
class KafkaNode:
    """One KRaft node (broker and controller) of a :class:`KafkaCluster`."""

    node_id: int
    port: int
    controller_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    def log_tail(self, limit: int = 4000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-limit:]
        except OSError:
            return ""


@dataclass(frozen=True)
class Partition:
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


def _new_cluster_id() -> str:
    """A KRaft cluster id; never with a leading "-", which the storage tool takes for an option."""
    while (found := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return found


class KafkaCluster:
    """``brokers`` Apache Kafka nodes in KRaft mode, on free 127.0.0.1 ports under ``directory``.

    Replication follows the size: with 3 or more nodes topics default to replication factor
    3 and ``min.insync.replicas`` 2 (the production drill's settings), with one node to 1.
    """

    def __init__(
        self, directory: Path, brokers: int = 1, *, start_timeout_s: float = START_TIMEOUT_S
    ) -> None:
        if brokers < 1:
            raise ValueError(f"brokers must be >= 1, got {brokers}")
        self.directory = directory
        self.start_timeout_s = start_timeout_s
        self.replication_factor = min(brokers, 3)
        self.min_insync_replicas = 2 if brokers >= 3 else 1
        ports = free_ports(2 * brokers)
        self.nodes = [
            KafkaNode(
                node_id=i,
                port=ports[2 * i - 2],
                controller_port=ports[2 * i - 1],
                directory=directory / f"node-{i}",
            )
            for i in range(1, brokers + 1)
        ]
        self._cluster_id = _new_cluster_id()
        self._lib: Path | None = None

    @property
    def bootstrap(self) -> str:
        return ",".join(node.address for node in self.nodes)

    def node(self, node_id: int) -> KafkaNode:
        return next(node for node in self.nodes if node.node_id == node_id)

    # --- configuration ---------------------------------------------------------------

    def _properties(self, node: KafkaNode) -> str:
        voters = ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in self.nodes)
        rf, isr = self.replication_factor, self.min_insync_replicas
        settings = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{HOST}:{node.port},CONTROLLER://{HOST}:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": node.directory / "data",
            "auto.create.topics.enable": "false",
            "default.replication.factor": rf,
            "min.insync.replicas": isr,
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": 6,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": isr,
            "transaction.state.log.num.partitions": 6,
            "group.initial.rebalance.delay.ms": 0,
            # Tests fail a SIGKILLed member over in seconds (default floor: 6 s).
            "group.min.session.timeout.ms": 1000,
            "unclean.leader.election.enable": "false",
            # A drill's restarted node catches up and takes its partitions back quickly.
            "leader.imbalance.check.interval.seconds": 5,
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _java(self, *args: str) -> list[str]:
        assert self._lib is not None
        return ["java", *JVM_OPTIONS, "-cp", f"{self._lib}/*", *args]

    def _format(self, node: KafkaNode) -> None:
        node.directory.mkdir(parents=True, exist_ok=True)
        (node.directory / "server.properties").write_text(self._properties(node), encoding="utf-8")
        (node.directory / "log4j2.properties").write_text(_LOG4J2.format(log=node.log_path), encoding="utf-8")
        props = str(node.directory / "server.properties")
        command = self._java("kafka.tools.StorageTool", "format", "-t", self._cluster_id, "-c", props)
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BrokerStartError(
                f"formatting KRaft storage of node {node.node_id} failed:\n{result.stdout}{result.stderr}"
            )

    # --- processes -------------------------------------------------------------------

    def start(self) -> Self:
        """Resolve the classpath, format every node, start them all and wait for the quorum."""
        started = time.monotonic()
        self._lib = kafka_classpath()
        for node in self.nodes:
            self._format(node)
        try:
            for node in self.nodes:
                self._spawn(node)
            self.wait_ready(self.nodes)
        except BaseException:
            self.stop()
            raise
        log.info(
            "kafka cluster started", bootstrap=self.bootstrap, seconds=round(time.monotonic() - started, 1)
        )
        return self

    def _spawn(self, node: KafkaNode) -> None:
        log4j = f"-Dlog4j2.configurationFile={node.directory / 'log4j2.properties'}"
        command = self._java(log4j, "kafka.Kafka", str(node.directory / "server.properties"))
        with (node.directory / "stdout.log").open("ab") as output:
            node.process = spawn_child(command, output)

    def wait_ready(self, nodes: list[KafkaNode], timeout_s: float | None = None) -> None:
        """Wait until every node of ``nodes`` listens and the cluster's metadata lists it."""
        deadline = time.monotonic() + (timeout_s or self.start_timeout_s)
        wanted = {node.node_id for node in nodes}
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            for node in nodes:
                if node.process is not None and node.process.poll() is not None:
                    code, tail = node.process.returncode, node.log_tail()
                    raise BrokerStartError(f"Kafka node {node.node_id} exited with code {code}:\n{tail}")
            try:
                if wanted <= self._live_broker_ids(nodes[0]):
                    return
            except (OSError, KafkaError) as exc:
                last_error = exc
            time.sleep(0.2)
        raise BrokerStartError(
            f"Kafka nodes {sorted(wanted)} not ready after {timeout_s or self.start_timeout_s:g} s "
            f"(last error: {last_error!r}):\n{nodes[0].log_tail()}"
        )

    def _live_broker_ids(self, node: KafkaNode) -> set[int]:
        with socket.create_connection((HOST, node.port), timeout=1.0):
            pass
        admin = open_admin(node.address, 2.0, {})
        try:
            cluster = admin.describe_cluster()
        finally:
            admin.close()
        return {int(broker["broker_id"]) for broker in cluster["brokers"] if not broker.get("is_fenced")}

    def describe_partitions(self, topics: list[str]) -> dict[tuple[str, int], Partition]:
        """Leader (-1: none), replicas and in-sync replicas of each partition of ``topics``."""
        admin = open_admin(",".join(n.address for n in self.nodes if n.running), 5.0, {})
        try:
            described = admin.describe_topics(topics)
        finally:
            admin.close()
        return {
            (topic["name"], part["partition_index"]): Partition(
                part["leader_id"], tuple(part["replica_nodes"]), tuple(part["isr_nodes"])
            )
            for topic in described
            for part in topic["partitions"]
        }

    def kill(self, node_id: int) -> None:
        """SIGKILL one node (a crash: no controlled shutdown)."""
        self._end(self.node(node_id), signal.SIGKILL)

    def stop_node(self, node_id: int) -> None:
        """Stop one node cleanly (SIGTERM: controlled shutdown, leadership moved first)."""
        self._end(self.node(node_id), signal.SIGTERM)

    def start_node(self, node_id: int, *, wait: bool = True) -> None:
        """Start a stopped or killed node again on its ports and data."""
        node = self.node(node_id)
        if node.running:
            return
        self._spawn(node)
        if wait:
            self.wait_ready([node])

    def _end(self, node: KafkaNode, signum: signal.Signals) -> None:
        process = node.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signum)
        try:
            process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_GRACE_S)

    def stop(self) -> None:
        """Stop every node: SIGTERM to all at once, then SIGKILL whatever is left after the grace."""
        running = [node for node in self.nodes if node.running]
        for node in running:
            assert node.process is not None
            node.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for node in running:
            assert node.process is not None
            try:
                node.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(timeout=STOP_GRACE_S)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class BrokerKind(StrEnum):
    """The brokers the benchmarks and drills can run on."""

    KAFKA = "kafka"  # Apache Kafka, what production runs
    TANSU = "tansu"  # the embedded broker of `bin/wo run`


@dataclass(frozen=True)
class RunningBroker:
    kind: BrokerKind
    bootstrap: str
    replication_factor: int
    cluster: KafkaCluster | None  # for drills that stop nodes; None for Tansu


@contextmanager
def running_broker(kind: BrokerKind, directory: Path, brokers: int = 1) -> Iterator[RunningBroker]:
    """A broker of ``kind`` for a benchmark or drill, stopped on exit."""
    directory.mkdir(parents=True, exist_ok=True)
    if kind is BrokerKind.TANSU:
        if brokers != 1:
            raise ValueError("the embedded broker has one node")
        with EmbeddedBroker(log_path=directory / "broker.log") as broker:
            yield RunningBroker(kind, broker.bootstrap, 1, None)
        return
    with KafkaCluster(directory / "kafka", brokers) as cluster:
        yield RunningBroker(kind, cluster.bootstrap, cluster.replication_factor, cluster)
