"""The ``wo run`` workers under test, their environment, and the database they share."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql

from crashkit.config import (
    ASSIGNED,
    PARTITIONS,
    POLICY_DIR,
    POSTGRES_ADMIN_DSN,
    POSTGRES_URL,
    REPO_ROOT,
    WO,
    CrashConfig,
    CrashTestError,
)
from workorder_pipeline.config.settings import ProcessingGuarantee
from workorder_pipeline.services.sender_keys import SigningKey, policy_dir_with_sender
from workorder_pipeline.wo.embedded_broker import free_port


class WorkerSlot:
    """One ``wo run`` worker; each (re)start logs to its own file."""

    def __init__(self, index: int, env: dict[str, str], logs: Path) -> None:
        self.index = index
        self.env = {**env, "WO_DATA_DIR": str(logs / f"data-{index}")}
        self.logs = logs
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.unexpected_exits: list[int] = []
        self._seen = self._scanned = 0
        self._assigned = False

    def log_path(self, start: int) -> Path:
        return self.logs / f"worker-{self.index}-run-{start:03d}.log"

    def start(self) -> None:
        self.starts += 1
        env = {**self.env, "WO_METRICS_PORT": str(free_port())}
        command = [str(WO), "run"]
        if shutil.which("setpriv"):  # the worker dies with us, even if we are SIGKILLed
            command = ["setpriv", "--pdeathsig", "KILL", *command]
        with self.log_path(self.starts).open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches us, and we stop the workers
            )

    def assigned(self) -> bool:
        """Whether the current run has been given partitions (it logs the assignment)."""
        if self._seen != self.starts:  # a new run: scan its log from the start
            self._seen, self._scanned, self._assigned = self.starts, 0, False
        if not self._assigned:
            start = max(0, self._scanned - len(ASSIGNED))  # the line may have been cut in two
            try:
                with self.log_path(self.starts).open("rb") as log:
                    log.seek(start)
                    text = log.read()
            except OSError:
                return False
            self._scanned = start + len(text)
            self._assigned = ASSIGNED in text
        return self._assigned

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self, timeout_s: float = 30) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout_s``. Returns the exit code (None: killed)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.process.returncode

    def restart_if_exited(self) -> None:
        """A worker that exited on its own is a finding: count it, and start it again."""
        if self.process is not None and self.process.poll() is not None:
            self.unexpected_exits.append(self.process.returncode)
            self.start()

    def log_text(self) -> str:
        return "".join(
            self.log_path(n).read_text(errors="replace")
            for n in range(1, self.starts + 1)
            if self.log_path(n).exists()
        )


@contextlib.contextmanager
def database(config: CrashConfig, workdir: Path) -> Iterator[str]:
    """The database URL to use: given, a new PostgreSQL database (dropped after), or a SQLite file."""
    if config.database_url is not None:
        yield config.database_url
        return
    if config.database == "sqlite":
        yield f"sqlite:///{workdir / 'workorders.db'}"
        return
    name = f"wo_crash_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        raise CrashTestError(f"PostgreSQL not reachable at 127.0.0.1:5432: {exc}") from exc
    try:
        yield POSTGRES_URL.format(name=name)
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def worker_env(
    bootstrap: str,
    database_url: str,
    group: str,
    guarantee: ProcessingGuarantee = ProcessingGuarantee.at_least_once,
    policy_dir: Path = POLICY_DIR,
) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WO_")}
    env.update(
        WO_PROCESSING_GUARANTEE=guarantee.value,
        WO_KAFKA_BOOTSTRAP=bootstrap,
        WO_DATABASE_URL=database_url,
        WO_CONSUMER_GROUP=group,
        WO_POLICY_DIR=str(policy_dir),
        WO_TOPIC_PARTITIONS=str(PARTITIONS),
        WO_KAFKA_SESSION_TIMEOUT_S="4",
        WO_KAFKA_REBALANCE_TIMEOUT_S="3",
        WO_KAFKA_HEARTBEAT_INTERVAL_S="1",
        WO_LOG_FORMAT="json",
    )
    return env


def signed_policy(workdir: Path) -> tuple[Path, SigningKey]:
    """A copy of policy/ in ``workdir`` that trusts a new key of the test's publisher; both."""
    policy_dir = workdir / "policy"
    return policy_dir, policy_dir_with_sender(POLICY_DIR, policy_dir, "crash test publisher", ("*",))
