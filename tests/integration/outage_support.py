"""Database outages under a running worker: a private PostgreSQL cluster to stop and start,
and a drill that keeps events flowing through outages and counts what came out.

Used by tests/integration/test_outages.py (short outages) and bench/outage_drill.py (30 s).
The machine's shared PostgreSQL (127.0.0.1:5432) is never touched: other tests use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from kafka import KafkaProducer

from tests.integration.pipeline_support import SAMPLES, file_lines
from workorder_pipeline.wo.embedded_broker import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres(*command: str, timeout_s: float = 60) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *command], check=True, timeout=timeout_s, capture_output=True)


class PrivatePostgres:
    """A PostgreSQL cluster of our own on a free port, in a temporary directory."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="wo-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        log = str(self.root / "server.log")
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` or ``immediate`` (pg_ctl's modes), or ``kill``: SIGKILL the postmaster (a crash)."""
        if mode == "kill":
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while self.accepts_connections() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1)  # its backends notice the postmaster's death and exit
            # The dead postmaster may stay a zombie (no parent of ours reaps it): its lock
            # files would then stop the next start.
            (self.data / "postmaster.pid").unlink(missing_ok=True)
            (self.root / f".s.PGSQL.{self.port}.lock").unlink(missing_ok=True)
            return
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def accepts_connections(self) -> bool:
        command = [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"]
        return subprocess.run(command, check=False).returncode == 0

    def close(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def alarm(run: str, n: int) -> tuple[bytes, bytes]:
    """A distinct vehicle alarm (its own plate: triage neither merges nor suppresses it)."""
    template = json.loads(file_lines(SAMPLES / "vehicle-alarms.jsonl")[0])
    plate = f"苏FD{n:04d}"
    event = {**template, "alarm_id": f"DRILL-{run}-{n:05d}", "plate": plate}
    return plate.encode(), json.dumps(event, ensure_ascii=False).encode()


@dataclass
class Flow:
    """Publishes distinct alarms at a steady rate in a thread until stopped; counts them."""

    bootstrap: str
    topic: str
    run: str
    rate_per_s: float = 40.0
    sent: int = 0
    error: BaseException | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._publish, name="flow", daemon=True)
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.error is not None:
            raise AssertionError(f"publishing failed: {self.error!r}")
        return self.sent

    def _publish(self) -> None:
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", allow_auto_create_topics=False, linger_ms=5
        )
        try:
            started = time.monotonic()
            while not self._stop.is_set():
                due = int((time.monotonic() - started) * self.rate_per_s)
                if self.sent >= due:
                    time.sleep(0.02)
                    continue
                key, value = alarm(self.run, self.sent)
                producer.send(self.topic, key=key, value=value).get(timeout=10)
                self.sent += 1
        except BaseException as exc:
            self.error = exc
        finally:
            producer.close(timeout=5)


def count_rows(engine: sa.engine.Engine, table: str = "work_order") -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def time_to_resume(
    database: PrivatePostgres, engine: sa.engine.Engine, alive: Callable[[], bool], timeout_s: float = 60
) -> float:
    """After the database came back: seconds until the worker stores orders again."""
    engine.dispose()
    back = time.monotonic()
    baseline = count_rows(engine)
    while time.monotonic() - back < timeout_s:
        if not alive():
            raise AssertionError("the worker exited after the outage")
        if count_rows(engine) > baseline:
            return time.monotonic() - back
        time.sleep(0.1)
    raise AssertionError(f"no order stored within {timeout_s:g} s of the database returning")


def outage(
    database: PrivatePostgres,
    engine: sa.engine.Engine,
    mode: str,
    seconds: float,
    alive: Callable[[], bool],
) -> float:
    """Stop the database for ``seconds`` (the worker must live through it); returns how long
    after its return intake stored orders again."""
    engine.dispose()  # the drill's own connections must not hold the server up
    database.stop(mode)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive():
            raise AssertionError(f"the worker exited during the {mode} outage")
        time.sleep(0.2)
    database.start()
    return time_to_resume(database, engine, alive)
