"""Helpers for tests that run the real pipeline: processes, Kafka topics, metrics, samples.

No mocks: everything here talks to real processes, a real broker and real files.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kafka import KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPO_ROOT / "samples"

T = TypeVar("T")
Labels = tuple[tuple[str, str], ...]
#: The port in ``wo run``'s ``metrics_serving`` line (JSON or console logs).
_METRICS_URL_PORT = re.compile(r"http://[^\s\"]+?:(\d+)/metrics")


# --- waiting ----------------------------------------------------------------------------


def wait_for(
    probe: Callable[[], T | None],
    timeout_s: float,
    what: str,
    interval_s: float = 0.2,
    describe: Callable[[], str] | None = None,
) -> T:
    """Poll ``probe`` until it returns something other than None (or False); fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while True:
        try:
            value = probe()
        except Exception as exc:  # the system under test may not be ready yet
            last_error = exc
            value = None
        if value is not None and value is not False:
            return value
        if time.monotonic() >= deadline:
            extra = f"\n{describe()}" if describe else ""
            raise AssertionError(
                f"timed out after {timeout_s:g} s waiting for {what} (last error: {last_error!r}){extra}"
            )
        time.sleep(interval_s)


# --- processes --------------------------------------------------------------------------


def clean_env(**settings: str) -> dict[str, str]:
    """The test's environment without any WO_* variable, plus ``settings``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("WO_")}
    # The bundled samples carry fixed 2026 dates: keep them plausible whenever the tests run.
    env["WO_MAX_EVENT_AGE_DAYS"] = "36500"
    env.update(settings)
    return env


@dataclass
class PipelineProcess:
    """A ``wo run`` process with its output in files (a pipe could fill up and block it)."""

    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    metrics_port: int

    @classmethod
    def start(
        cls, command: list[str], env: Mapping[str, str], logs: Path, metrics_port: int
    ) -> PipelineProcess:
        logs.mkdir(parents=True, exist_ok=True)
        stdout_path = logs / "stdout.log"
        stderr_path = logs / "stderr.log"
        with stdout_path.open("ab") as out, stderr_path.open("ab") as err:
            process = subprocess.Popen(
                command, cwd=REPO_ROOT, env=dict(env), stdin=subprocess.DEVNULL, stdout=out, stderr=err
            )
        return cls(process, stdout_path, stderr_path, metrics_port)

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(errors="replace")

    def tail(self, chars: int = 4000) -> str:
        return f"--- output of pid {self.pid} (exit {self.process.poll()}) ---\n{self.output()[-chars:]}"

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            body: bytes = response.read()
        return body.decode()

    def serving_ports(self) -> list[int]:
        """The metrics ports this process said it serves on (``metrics_serving``, any log format)."""
        lines = [line for line in self.output().splitlines() if "metrics_serving" in line]
        return [int(port) for line in lines for port in _METRICS_URL_PORT.findall(line)]

    def wait_metrics(self, timeout_s: float) -> None:
        """Wait until this process says it serves its metrics and the endpoint answers; fail
        early (with its output) if the process died. Its own word first: a port picked free
        is free only at that moment, and another process that took it would answer for ours.
        With metrics port 0, the port it says it took."""

        def probe() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"wo run exited with {self.process.returncode}")
            said = self.serving_ports()
            if self.metrics_port == 0 and said:
                self.metrics_port = said[0]
            if self.metrics_port not in said:
                return False
            try:
                self.metrics_text()
            except (urllib.error.URLError, OSError):
                return False
            return True

        deadline = time.monotonic() + timeout_s
        while not probe():
            if time.monotonic() >= deadline:
                raise AssertionError(f"metrics endpoint not answering after {timeout_s:g} s\n{self.tail()}")
            time.sleep(0.2)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 20) -> int | None:
        """Signal the process and wait; SIGKILL it if it does not exit in time. Returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
                return None
        return self.process.returncode


class HeldPort:
    """A port on 127.0.0.1 bound and not listened on until released: connecting to it is
    refused, as to a server not started yet, and no other process can take it meanwhile
    (a number from free_port() is free only at the moment it was picked)."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]

    def release(self) -> None:
        """Free it for the server that is to listen on it (started right after)."""
        self._socket.close()

    def __enter__(self) -> HeldPort:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def process_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def pids_with_cmdline(fragment: str) -> list[int]:
    """Live processes whose command line contains ``fragment`` (a /proc scan, no psutil)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if fragment in cmdline and process_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def children_of(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return children


# --- Kafka ------------------------------------------------------------------------------


def read_topic(bootstrap: str, topic: str, timeout_s: float = 10) -> list[Any]:
    """Every record now in ``topic``, from all partitions (no consumer group)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        request_timeout_ms=5000,
    )
    try:
        deadline = time.monotonic() + timeout_s
        partitions = wait_for(
            lambda: consumer.partitions_for_topic(topic), timeout_s, f"partitions of {topic}", 0.05
        )
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        consumer.seek_to_beginning(*assigned)
        end = consumer.end_offsets(assigned)
        records: list[Any] = []
        while any(consumer.position(tp) < end[tp] for tp in assigned):
            if time.monotonic() >= deadline:
                raise AssertionError(f"could not read {topic} to its end {end} within {timeout_s:g} s")
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topics: list[str]) -> dict[Any, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, request_timeout_ms=5000)
    try:
        partitions = []
        for topic in topics:

            def probe(topic: str = topic) -> set[int] | None:
                found: set[int] | None = consumer.partitions_for_topic(topic)
                return found

            partitions += [
                TopicPartition(topic, p) for p in sorted(wait_for(probe, 10, f"partitions of {topic}", 0.05))
            ]
        result: dict[Any, int] = consumer.end_offsets(partitions)
        return result
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str, partitions: list[Any]) -> dict[Any, int | None]:
    """The group's committed offsets (without joining the group)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, request_timeout_ms=5000
    )
    try:
        return {tp: consumer.committed(tp, timeout_ms=5000) for tp in partitions}
    finally:
        consumer.close()


def group_caught_up(bootstrap: str, group: str, topics: list[str]) -> bool:
    """True when ``group`` has committed every message now in ``topics`` (all processed)."""
    end = end_offsets(bootstrap, topics)
    committed = committed_offsets(bootstrap, group, list(end))
    return all((committed[tp] or 0) >= offset for tp, offset in end.items())


# --- metrics ----------------------------------------------------------------------------


def metric_samples(text: str, name: str) -> dict[Labels, float]:
    """Samples of the metric ``name`` (sample name, e.g. ``wo_signals_received_total``) by labels."""
    samples: dict[Labels, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                samples[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def metric_total(text: str, name: str) -> float:
    return sum(metric_samples(text, name).values())


# --- samples ----------------------------------------------------------------------------


def file_lines(path: Path) -> list[bytes]:
    """The messages ``wo publish`` sends for a file: each non-blank line without its line break."""
    return [line.rstrip(b"\r\n") for line in path.read_bytes().splitlines() if line.strip()]


def json_lines(path: Path) -> Iterator[dict[str, Any]]:
    for line in file_lines(path):
        document: dict[str, Any] = json.loads(line)
        yield document


def publisher_id(event: dict[str, Any]) -> tuple[str, ...]:
    """The publisher's own id of an inbound event, per its contract (contracts.md)."""
    family = str(event["schema"]).split("/")[0]
    if family == "vehicle-alarm":
        return (family, event["platform_id"], event["alarm_id"])  # unique per platform
    if family == "suspect":
        return (family, event["entry_id"])
    if family == "checkin-failure":
        return (family, event["check_id"])
    if family == "complaint":
        return (family, event["ticket_id"])
    raise ValueError(f"unknown contract {event['schema']!r}")
