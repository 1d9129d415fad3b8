"""Worker and broker processes, their CPU and memory, and the databases."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from benchkit.common import CLOCK_TICKS, POSTGRES_ADMIN_DSN, REPO_ROOT, BenchmarkError
from workorder_pipeline.wo.embedded_broker import EmbeddedBroker
from workorder_pipeline.wo.kafka_cluster import BrokerKind, KafkaCluster, kafka_version

# --- processes ---------------------------------------------------------------------------


def proc_status_kb(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Child:
    """A worker process with its output in a file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    metrics_port: int | None = None
    peak_rss_kb: int = 0
    handled: int = 0
    #: Wall-clock time of the last intake batch logged.
    last_batch_at: float = 0.0
    _log_offset: int = 0
    _partial: bytes = b""

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def check_alive(self) -> None:
        if not self.alive():
            raise BenchmarkError(f"{self.name} exited with {self.process.returncode}\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return f"--- {self.log_path} ---\n{text[-chars:]}"

    def rss_kb(self) -> int:
        return proc_status_kb(self.pid, "VmRSS")

    def record_peak(self) -> None:
        with contextlib.suppress(OSError):
            self.peak_rss_kb = max(self.peak_rss_kb, proc_status_kb(self.pid, "VmHWM"))

    def metrics_answering(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5):
                return True
        except OSError:
            return False

    def read_batches(self) -> int:
        """Messages the worker's ``intake_batch`` log lines account for so far.

        Read from its log file, not its metrics endpoint: a scrape costs the worker database
        queries (open orders) and CPU, which polling it would take from the pipeline.
        """
        with self.log_path.open("rb") as log:
            log.seek(self._log_offset)
            data = log.read()
        self._log_offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if b'"intake_batch"' not in line:
                continue
            try:
                document = json.loads(line)
            except ValueError:
                continue
            if document.get("event") == "intake_batch":
                self.handled += int(document["messages"])
                self.last_batch_at = datetime.fromisoformat(document["timestamp"]).timestamp()
        return self.handled

    def stop(self, timeout_s: float = 30) -> None:
        self.record_peak()
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_child(
    name: str, command: list[str], env: dict[str, str], log_path: Path, port: int | None
) -> Child:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    return Child(name, process, log_path, port)


def wait_until(probe: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.05) -> float:
    """Poll until ``probe()``; returns the monotonic time it first held."""
    deadline = time.monotonic() + timeout_s
    while True:
        if probe():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise BenchmarkError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(interval_s)


# --- brokers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchBroker:
    kind: BrokerKind
    bootstrap: str
    label: str
    #: The broker's processes now (a Kafka node's JVM, Tansu's binary), for CPU and RSS.
    pids: Callable[[], list[int]]


@contextlib.contextmanager
def bench_broker(kind: BrokerKind, workdir: Path) -> Iterator[BenchBroker]:
    """A broker of ``kind`` for one benchmark run, stopped on exit."""
    if kind is BrokerKind.TANSU:
        with EmbeddedBroker(log_path=workdir / "tansu.log") as tansu:
            yield BenchBroker(
                kind, tansu.bootstrap, "embedded Tansu", lambda: [tansu.pid] if tansu.pid else []
            )
        return
    with KafkaCluster(workdir / "kafka", brokers=1) as cluster:

        def pids() -> list[int]:
            return [node.process.pid for node in cluster.nodes if node.process is not None and node.running]

        yield BenchBroker(kind, cluster.bootstrap, f"Apache Kafka {kafka_version()} (one KRaft node)", pids)


# --- databases ---------------------------------------------------------------------------


@contextlib.contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{workdir}/wo-{uuid.uuid4().hex[:8]}.db"
        return
    import psycopg
    from psycopg import sql

    name = f"wo_bench_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        raise BenchmarkError(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}") from exc
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
