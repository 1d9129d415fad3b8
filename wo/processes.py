"""``wo run --processes N``: N worker processes of one consumer group, for one machine's cores.

One Python process uses one core (the interpreter lock); a worker's intake, commands and
leader work are already shared by the members of the consumer group, so N workers need no
coordination beyond Kafka's. This parent starts what must exist once: the embedded broker
(or waits for the external one), the topics, the database's migration, the API's signing key
and the API itself; then N children, each ``wo run`` without API (``--worker-process K``),
metrics on ``WO_METRICS_PORT + K``. Kafka elects the leader among them as among hosts.

A child that exits while nobody asked it to is logged and ends the command: the others are
stopped and the exit code is 1, so that systemd, Docker or Kubernetes restarts the whole set
as they would restart a single worker (no restart loop of our own hiding a crash).
SIGTERM or SIGINT stops every child with SIGTERM (each finishes its batch and commits), then
the API and the broker; exit code 0 when every child stopped cleanly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from types import FrameType

import structlog

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.services.policy_set import load_policy_set
from workorder_pipeline.storage.database import create_engine
from workorder_pipeline.storage.repository import WorkOrderRepository
from workorder_pipeline.wo import pipeline, ports
from workorder_pipeline.wo.broker_keeper import create_topics
from workorder_pipeline.wo.children import spawn_child
from workorder_pipeline.wo.embedded_broker import EmbeddedBroker

log = structlog.get_logger(__name__)

#: How long a child may take to stop after SIGTERM before it is killed.
STOP_TIMEOUT_S = 30.0
#: How often the parent looks at its children and the embedded broker.
WATCH_INTERVAL_S = 0.5
#: Exit code when a worker process ended on its own.
EXIT_WORKER_DIED = 1


@dataclass
class WorkerProcess:
    index: int
    process: subprocess.Popen[bytes]


def child_environment(settings: Settings, index: int, broker: EmbeddedBroker | None) -> dict[str, str]:
    """The parent's environment, pointed at the running broker, with the child's own metrics port."""
    env = dict(os.environ)
    if broker is not None:
        env["WO_KAFKA_BOOTSTRAP"] = broker.bootstrap
    env["WO_METRICS_PORT"] = str(settings.metrics_port + index if settings.metrics_port else 0)
    return env


def check_child_ports(settings: Settings, count: int) -> None:
    """The children's metrics ports, checked before anything starts (as ``wo run`` checks its own)."""
    if not settings.metrics_port:
        return
    for index in range(1, count):
        port = settings.metrics_port + index
        hint = "set WO_METRICS_PORT: N ports from it are needed"
        ports.bind(ports.Listener("metrics", settings.metrics_host, port, hint)).close()


def start_worker(settings: Settings, index: int, broker: EmbeddedBroker | None) -> WorkerProcess:
    command = [sys.executable, "-m", "workorder_pipeline.wo.cli", "run", "--worker-process", str(index)]
    # Output to our stderr: one log stream, each line tagged with its process (wo/cli.py).
    process = spawn_child(command, sys.stderr.fileno(), child_environment(settings, index, broker))
    log.info("worker_process_started", process=index, pid=process.pid)
    return WorkerProcess(index, process)


class StopRequest:
    """SIGTERM / SIGINT, turned into an event the watch loop waits on."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signal: int | None = None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.signal = signum
        self.event.set()


def run_processes(settings: Settings, count: int) -> int:
    """Run ``count`` worker processes until SIGTERM/SIGINT or until one of them exits."""
    loaded = load_policy_set(settings.policy_dir)  # a bad policy stops us before anything starts
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ports.check_ports(settings)
    check_child_ports(settings, count)
    stop = StopRequest()
    stop.install()
    broker: EmbeddedBroker | None = None
    workers: list[WorkerProcess] = []
    api = None
    try:
        broker = pipeline.start_broker(settings)
        pipeline.set_up_topics(settings)
        pipeline.prepare_database(settings)
        key = pipeline.api_signing_key(settings)  # made here once: every child trusts the same key
        if key is not None:
            repository = WorkOrderRepository(create_engine(settings.database_url))
            figures = pipeline.figure_snapshots(settings, repository, loaded)
            api = pipeline.start_api(settings, repository, key, figures)
        workers = [start_worker(settings, index, broker) for index in range(count)]
        died = watch(workers, broker, settings, stop)
    finally:
        codes = stop_workers(workers)
        if api is not None:
            api.should_exit = True
        if broker is not None:
            broker.stop()
            log.info("embedded_broker_stopped")
    if died:
        return EXIT_WORKER_DIED
    return 0 if all(code == 0 for code in codes) else EXIT_WORKER_DIED


def watch(
    workers: list[WorkerProcess], broker: EmbeddedBroker | None, settings: Settings, stop: StopRequest
) -> bool:
    """Wait for a stop request (False) or a child's exit (True); restart a dead embedded broker
    as a single ``wo run`` does (streams/topic_watch)."""
    while not stop.event.wait(WATCH_INTERVAL_S):
        for worker in workers:
            code = worker.process.poll()
            if code is not None:
                pid = worker.process.pid
                log.error("worker_process_exited", process=worker.index, pid=pid, exit_code=code)
                print(
                    f"wo: 工作进程 {worker.index}（pid {pid}）意外退出，退出码 {code}；其余工作进程随之停止",
                    file=sys.stderr,
                )
                return True
        if broker is not None and not broker.running:
            log.error("embedded_broker_died", exit_code=broker.exit_code)
            broker.stop()
            broker.start()
            log.info("embedded_broker_started", bootstrap=broker.bootstrap, pid=broker.pid)
            create_topics(settings)
    log.info("worker_processes_stopping", signal=stop.signal)
    return False


def stop_workers(workers: list[WorkerProcess]) -> list[int]:
    """SIGTERM to every child still running, then wait; a child still there after
    STOP_TIMEOUT_S is killed. Returns the exit codes."""
    for worker in workers:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    codes: list[int] = []
    for worker in workers:
        try:
            code = worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.error("worker_process_killed", process=worker.index, pid=worker.process.pid)
            worker.process.kill()
            code = worker.process.wait()
        log.info("worker_process_stopped", process=worker.index, pid=worker.process.pid, exit_code=code)
        codes.append(code)
    return codes
