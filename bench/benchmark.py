#!/usr/bin/env python
"""Throughput and latency of the pipeline against the stack's own ceilings, in one run.

Starts its own embedded Tansu broker and, on the same messages (vehicle alarms: 50% new,
30% exact re-sends of earlier ones, 20% repeats of an open order's vehicle and alarm type),
measures:

- raw consume: aiokafka ``getmany`` over the backlog, no parsing (the stack's ceiling),
  and the same plus ``decode_event`` (validation, as the pipeline decodes) without faust;
- a parse-only faust agent (faust's ceiling): per event (``async for``) and in batches
  the way the pipeline's agent takes them (``noack_take`` + ``ack``);
- the full pipeline, ``wo run`` worker processes (SQLite and/or PostgreSQL): the backlog's
  rate (validate, dedupe, triage, store in one transaction per batch, publish on
  ``workorders.dispatched``, mark dispatched), then latency event -> dispatched at fixed
  offered loads, with 1 and with 2 workers on 6 partitions; the workers' peak RSS and
  CPU time per event (and the broker's);

and prints a table with the ratios pipeline / faust parse-only and pipeline / raw consume
and the issue's targets. Rates are measured on a backlog produced once the consumers are
idle in their group: messages / (last one handled - first one produced). Latency is the
dispatched record's timestamp minus the alarm's (both stamped by their producers on this
machine). Other processes on the machine skew absolute figures: compare ratios measured
in the same run, and read the CPU per event next to the rates.

    .venv/bin/python bench/benchmark.py                       # SQLite and PostgreSQL
    .venv/bin/python bench/benchmark.py --sqlite --messages 20000 --loads 500,2000 --duration 30
    .venv/bin/python bench/benchmark.py --postgres --workers 1,2 --soak 600   # + a 10-minute memory run

PostgreSQL: the server at 127.0.0.1:5432 (user postgres, trust auth, like the tests); a
database is created for each run and dropped afterwards. Exit status: 0 when every
target was met, 1 when one was missed, 2 when the run could not be carried out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import json
import os
import random
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script: the repository's packages
    sys.path.insert(0, str(REPO_ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.partitioner import DefaultPartitioner  # noqa: E402

from config.settings import Settings, Topics  # noqa: E402
from processors.intake import decode_event  # noqa: E402
from services.calendar_files import load_calendar  # noqa: E402
from services.intake import InboundMessage, Intake  # noqa: E402
from services.policy_files import ReferenceFiles, load_policy  # noqa: E402
from storage.database import create_engine, migrate  # noqa: E402
from storage.repository import WorkOrderRepository  # noqa: E402
from wo.embedded_broker import EmbeddedBroker, ensure_topics, free_port  # noqa: E402

ALARM_CONTRACT = "vehicle-alarm/1"
POSTGRES_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
TOPIC_NAMES = tuple(Topics.model_fields)
WARMUP_TIMEOUT_S = 90  # a worker's start plus the group join (~5 s on the embedded broker)
START_TIMEOUT_S = 60
#: Intake settings the workers and the faust batch agent use (the pipeline's defaults).
BATCH_SIZE = 500
BATCH_SECONDS = 0.2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROFILE_RATE_HZ = 250

# Targets of the issue.
TARGET_PIPELINE_OVER_FAUST = 0.5
TARGET_POSTGRES_RATE = 5000.0
TARGET_P99_MS = 250.0
TARGET_P99_LOAD = 2000
TARGET_SCALING = 1.6
#: faust's parse-only rate on the machine where the issue set its absolute targets (the
#: PostgreSQL rate and the load of the p99 target): machines here differ ~3x from day to day.
ISSUE_FAUST_RATE = (7_000, 10_000)


# --- the messages ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    key: bytes
    value: bytes
    #: The alarm id of a new alarm (one that makes an order); None for re-sends and repeats.
    new_alarm: str | None


_VEHICLES = itertools.count()


class AlarmStream:
    """Vehicle alarms: 50% new vehicles (each makes an order), 30% byte-for-byte re-sends
    of an earlier message, 20% a new alarm of a recent vehicle and alarm type (merged into
    its open order). Keyed by plate, as the publishers key them."""

    OFFICES = "ABCDEFGHJKLMN"
    TYPES = ("fatigue_driving", "route_deviation", "adas_forward_collision", "overspeed", "offline")
    CLASSES = ("coach", "taxi", "heavy_truck", "dangerous_goods")

    def __init__(self, tag: str, seed: int = 1) -> None:
        self.tag = tag
        self.rng = random.Random(seed)
        self.count = 0
        self.new = 0
        self.recent_messages: list[Message] = []
        self.recent_keys: list[tuple[str, str, str]] = []
        # Event times: from an hour ago, one millisecond apart (the pipeline refuses
        # times more than an hour ahead and very old ones).
        self.base = datetime.now(UTC) - timedelta(hours=1)

    def _remember(self, items: list[Any], item: Any) -> None:
        items.append(item)
        if len(items) > 2000:
            del items[:1000]

    def next(self) -> Message:
        self.count += 1
        roll = self.rng.random()
        if roll < 0.3 and self.recent_messages:
            return self.rng.choice(self.recent_messages[-1000:])
        if roll < 0.5 and self.recent_keys:
            plate, alarm_type, vehicle_class = self.rng.choice(self.recent_keys[-1000:])
            message = self._alarm(plate, alarm_type, vehicle_class, new=False)
        else:
            self.new += 1
            n = next(_VEHICLES)  # unique in the run: a new vehicle, never merged into another's order
            if n >= len(self.OFFICES) * 100_000:
                raise BenchmarkError("out of plates: send fewer messages")
            plate = f"苏{self.OFFICES[n // 100_000]}{n % 100_000:05d}"
            alarm_type, vehicle_class = self.rng.choice(self.TYPES), self.rng.choice(self.CLASSES)
            self._remember(self.recent_keys, (plate, alarm_type, vehicle_class))
            message = self._alarm(plate, alarm_type, vehicle_class, new=True)
        self._remember(self.recent_messages, message)
        return message

    def _vehicle(self, plate: str) -> int:
        return self.OFFICES.index(plate[1]) * 100_000 + int(plate[2:])

    def _alarm(self, plate: str, alarm_type: str, vehicle_class: str, new: bool) -> Message:
        alarm_id = f"{self.tag}-{self.count:08d}"
        event: dict[str, Any] = {
            "schema": ALARM_CONTRACT,
            "alarm_id": alarm_id,
            "platform_id": "js-key-vehicles",
            "plate": plate,
            "plate_color": "yellow",
            "vehicle_class": vehicle_class,
            # About 20 vehicles per enterprise: triage links an order to every open order of
            # its enterprise, so one enterprise for all would make that step quadratic.
            "enterprise": {
                "id": f"913206{self._vehicle(plate) // 20:012d}",
                "name": "如皋市雉水客运有限公司",
            },
            "alarm_type": alarm_type,
            "level": 2,
            "occurred_at": (self.base + timedelta(milliseconds=self.count)).isoformat(),
            "location": {"lat": 32.4418, "lon": 120.6307, "region_code": "320682", "road": "G15"},
            "duration_s": 95,
        }
        if alarm_type == "overspeed":  # 30% over: above the suppression threshold
            event |= {"speed_kmh": 130.0, "speed_limit_kmh": 100.0}
        value = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        return Message(plate.encode(), value, alarm_id if new else None)

    def take(self, count: int) -> list[Message]:
        return [self.next() for _ in range(count)]


# --- Kafka helpers -----------------------------------------------------------------------


async def produce_backlog(bootstrap: str, topic: str, messages: Sequence[Message], partitions: int) -> None:
    """Send ``messages`` in batches per partition (key-hashed like the default partitioner)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=-1, linger_ms=5)
    await producer.start()
    try:
        partitioner = DefaultPartitioner()
        everything = list(range(partitions))
        by_partition: dict[int, list[Message]] = {}
        for message in messages:
            by_partition.setdefault(partitioner(message.key, everything, everything), []).append(message)
        pending = []
        for partition, items in by_partition.items():
            batch = producer.create_batch()
            for message in items:
                if batch.append(key=message.key, value=message.value, timestamp=None) is None:
                    pending.append(await producer.send_batch(batch, topic, partition=partition))
                    batch = producer.create_batch()
                    batch.append(key=message.key, value=message.value, timestamp=None)
            pending.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def produce_one_per_partition(bootstrap: str, topic: str, messages: Sequence[Message]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=-1)
    await producer.start()
    try:
        for partition, message in enumerate(messages):
            await producer.send_and_wait(topic, message.value, key=message.key, partition=partition)
    finally:
        await producer.stop()


@dataclass
class PacedResult:
    sent: int
    seconds: float
    #: New alarm id -> ms timestamp it was sent with.
    sent_ms: dict[str, int]


async def produce_paced(
    bootstrap: str, topic: str, stream: AlarmStream, rate: float, duration_s: float
) -> PacedResult:
    """Offer ``rate`` messages/s for ``duration_s``, each stamped with its send time."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=-1, linger_ms=0)
    await producer.start()
    sent_ms: dict[str, int] = {}
    sent = 0
    pending: list[Any] = []
    try:
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < duration_s:
            due = int(elapsed * rate)
            while sent < due:
                message = stream.next()
                now_ms = int(time.time() * 1000)
                pending.append(
                    await producer.send(topic, message.value, key=message.key, timestamp_ms=now_ms)
                )
                if message.new_alarm is not None:
                    sent_ms[message.new_alarm] = now_ms
                sent += 1
            if len(pending) > 5000:
                await asyncio.gather(*pending)
                pending.clear()
            await asyncio.sleep(0.005)
        await asyncio.gather(*pending)
        return PacedResult(sent, time.monotonic() - started, sent_ms)
    finally:
        await producer.stop()


class DispatchedReader:
    """Collects (alarm id, dispatched timestamp) from the dispatched topic in the background."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.dispatched_ms: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._consumer: Any = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=50
        )
        await self._consumer.start()
        partitions = [
            TopicPartition(self.topic, p) for p in sorted(self._consumer.partitions_for_topic(self.topic))
        ]
        self._consumer.assign(partitions)
        await self._consumer.seek_to_end(*partitions)
        for partition in partitions:  # resolve the end positions now, before the load starts
            await self._consumer.position(partition)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            for records in batches.values():
                for record in records:
                    for source_id in json.loads(record.value)["source_ids"]:
                        alarm_id = source_id.rpartition("/")[2]
                        self.dispatched_ms.setdefault(alarm_id, record.timestamp)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()


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


class BenchmarkError(RuntimeError):
    pass


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


# --- results -----------------------------------------------------------------------------


@dataclass
class Row:
    what: str
    database: str = "-"
    workers: int = 1
    offered: float | None = None
    rate: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    peak_rss_mb: float | None = None
    cpu_us: float | None = None
    broker_cpu_us: float | None = None
    note: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    soak: list[tuple[float, float]] = field(default_factory=list)  # (seconds, RSS MB)
    soak_note: str = ""
    profiles: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        print(f"  -> {format_row(row)}", flush=True)
        return row

    def find(
        self, what: str, database: str = "-", workers: int = 1, offered: float | None = None
    ) -> Row | None:
        for row in self.rows:
            if (row.what, row.database, row.workers, row.offered) == (what, database, workers, offered):
                return row
        return None


def _num(value: float | None, digits: int = 0) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def format_row(row: Row) -> str:
    return " | ".join(
        [
            row.what,
            row.database,
            str(row.workers),
            _num(row.offered),
            _num(row.rate),
            _num(row.p50),
            _num(row.p95),
            _num(row.p99),
            _num(row.peak_rss_mb),
            _num(row.cpu_us),
            _num(row.broker_cpu_us),
            row.note,
        ]
    )


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


# --- the measurements -----------------------------------------------------------------


@dataclass
class Config:
    messages: int
    databases: list[str]
    loads: list[int]
    duration_s: float
    workers: list[int]
    partitions: int
    soak_s: float
    soak_load: int
    keep: bool
    fetch_wait_ms: int
    batch_interval_ms: int
    profile_dir: Path | None = None


class Benchmark:
    def __init__(self, config: Config, broker: EmbeddedBroker, workdir: Path) -> None:
        self.config = config
        self.broker = broker
        self.bootstrap = broker.bootstrap
        self.workdir = workdir
        self.results = Results()
        self.backlog = AlarmStream("BL").take(config.messages)
        self.wo = Path(sys.executable).parent / "wo"

    def topic(self, label: str) -> str:
        name = f"bench.{label}.{uuid.uuid4().hex[:6]}"
        ensure_topics(self.bootstrap, [name], self.config.partitions, 1)
        return name

    def broker_cpu(self) -> float:
        pid = self.broker.pid
        return cpu_seconds(pid) if pid is not None else 0.0

    # raw aiokafka ------------------------------------------------------------------

    async def raw(self) -> None:
        topic = self.topic("raw")
        await produce_backlog(self.bootstrap, topic, self.backlog, self.config.partitions)
        for parse in (False, True):
            label = "aiokafka getmany + decode_event (no faust)" if parse else "aiokafka getmany (raw)"
            print(f"{label}: {len(self.backlog):,} messages", flush=True)
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                fetch_max_wait_ms=100,
            )
            await consumer.start()
            try:
                partitions = [TopicPartition(topic, p) for p in range(self.config.partitions)]
                consumer.assign(partitions)
                await consumer.seek_to_beginning(*partitions)
                for partition in partitions:
                    await consumer.position(partition)
                count = 0
                cpu0, broker0 = resource.getrusage(resource.RUSAGE_SELF), self.broker_cpu()
                started = time.monotonic()
                while count < len(self.backlog):
                    batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                    for records in batches.values():
                        count += len(records)
                        if parse:
                            for record in records:
                                decode_event(record.value, ALARM_CONTRACT)
                elapsed = time.monotonic() - started
                cpu1, broker1 = resource.getrusage(resource.RUSAGE_SELF), self.broker_cpu()
            finally:
                await consumer.stop()
            cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
            self.results.add(
                Row(
                    label,
                    rate=count / elapsed,
                    cpu_us=cpu / count * 1e6,
                    broker_cpu_us=(broker1 - broker0) / count * 1e6,
                )
            )

    # faust parse-only ----------------------------------------------------------------

    async def faust_parse_only(self, mode: str) -> None:
        what = {
            "event": "faust agent, parse only: per event (async for)",
            "take": "faust agent, parse only: noack_take batches (as the pipeline)",
        }[mode]
        print(f"{what}: {len(self.backlog):,} messages", flush=True)
        topic = self.topic(f"faust-{mode}")
        group = f"bench-faust-{mode}-{uuid.uuid4().hex[:6]}"
        warmup = AlarmStream(f"WF{mode}").take(self.config.partitions)
        child_config = {
            "bootstrap": self.bootstrap,
            "topic": topic,
            "group": group,
            "mode": mode,
            "warmup": len(warmup),
            "target": len(warmup) + len(self.backlog),
            "datadir": str(self.workdir / group),
            "partitions": self.config.partitions,
        }
        log_path = self.workdir / f"{group}.log"
        env = dict(os.environ)
        child = start_child(
            "faust parse-only agent",
            [sys.executable, str(Path(__file__).resolve()), "--faust-child", json.dumps(child_config)],
            env,
            log_path,
            None,
        )
        try:

            def marker(text: str) -> str | None:
                child.check_alive()
                for line in log_path.read_text(errors="replace").splitlines():
                    if line.startswith(text):
                        return line
                return None

            await produce_one_per_partition(self.bootstrap, topic, warmup)
            await asyncio.to_thread(
                wait_until, lambda: marker("BENCH READY") is not None, WARMUP_TIMEOUT_S, "the faust agent"
            )
            cpu0, broker0 = cpu_seconds(child.pid), self.broker_cpu()
            started = time.monotonic()
            await produce_backlog(self.bootstrap, topic, self.backlog, self.config.partitions)
            await asyncio.to_thread(
                wait_until, lambda: marker("BENCH DONE") is not None, 600, "the faust agent to finish", 0.2
            )
            done_line = marker("BENCH DONE")
            assert done_line is not None
            finished = float(done_line.split()[2])
            cpu1, broker1 = cpu_seconds(child.pid), self.broker_cpu()
            child.record_peak()
            n = len(self.backlog)
            self.results.add(
                Row(
                    what,
                    rate=n / (finished - started),
                    peak_rss_mb=child.peak_rss_kb / 1024,
                    cpu_us=(cpu1 - cpu0) / n * 1e6,
                    broker_cpu_us=(broker1 - broker0) / n * 1e6,
                )
            )
        finally:
            child.stop()

    # the same services without faust (figures for the design) --------------------------

    def intake_service(self, url: str, topics: Topics) -> tuple[Intake, Any]:
        """The worker's Intake over a migrated database, built as wo/pipeline.py builds it."""
        migrate(url)
        engine = create_engine(url)
        policy_dir = REPO_ROOT / "policy"
        reference = ReferenceFiles(policy_dir)
        intake = Intake(
            load_policy(policy_dir),
            WorkOrderRepository(engine),
            topics.inbound(),
            reference=lambda: reference.current,
            calendar=load_calendar(policy_dir),
        )
        return intake, engine

    async def intake_only(self, kind: str) -> None:
        """Intake.handle + dispatched() on batches of 500, in this process: no Kafka at all."""
        what = "Intake.handle alone, batches of 500 (no Kafka)"
        print(f"{what} ({kind}): {len(self.backlog):,} messages", flush=True)
        topics = Topics()
        with database(kind, self.workdir) as url:
            intake, engine = self.intake_service(url, topics)
            try:
                messages = [
                    InboundMessage(topics.vehicle_alarms, 0, offset, message.key, message.value)
                    for offset, message in enumerate(self.backlog)
                ]
                cpu0 = resource.getrusage(resource.RUSAGE_SELF)
                started = time.monotonic()
                for start in range(0, len(messages), BATCH_SIZE):
                    now = datetime.now(UTC)
                    result = intake.handle(messages[start : start + BATCH_SIZE], now)
                    intake.dispatched(result.to_dispatch, now)
                elapsed = time.monotonic() - started
                cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            finally:
                engine.dispose()
        cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
        n = len(messages)
        self.results.add(Row(what, kind, rate=n / elapsed, cpu_us=cpu / n * 1e6))

    # the pipeline ------------------------------------------------------------------

    def worker_env(self, database_url: str, group: str, topics: Topics, index: int) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("WO_")}
        env.update(
            WO_KAFKA_BOOTSTRAP=self.bootstrap,
            WO_DATABASE_URL=database_url,
            WO_CONSUMER_GROUP=group,
            WO_METRICS_PORT=str(free_port()),
            WO_DATA_DIR=str(self.workdir / f"{group}-{index}"),
            WO_LOG_FORMAT="json",
            WO_TOPIC_PARTITIONS=str(self.config.partitions),
            WO_INTAKE_BATCH_SIZE=str(BATCH_SIZE),
            WO_INTAKE_BATCH_SECONDS=str(BATCH_SECONDS),
            WO_CONSUMER_FETCH_MAX_WAIT_MS=str(self.config.fetch_wait_ms),
            WO_INTAKE_BATCH_INTERVAL_MS=str(self.config.batch_interval_ms),
        )
        for name in TOPIC_NAMES:
            env[f"WO_TOPICS__{name.upper()}"] = getattr(topics, name)
        return env

    async def pipeline(self, kind: str, workers: int) -> None:
        label = f"pipeline: wo run ({kind}, {workers} worker{'s' if workers > 1 else ''})"
        print(f"{label}: {len(self.backlog):,} messages, then loads {self.config.loads} ev/s", flush=True)
        run = uuid.uuid4().hex[:6]
        topics = Topics(**{name: f"bench.{run}.{name.replace('_', '-')}" for name in TOPIC_NAMES})
        ensure_topics(self.bootstrap, topics.all(), self.config.partitions, 1)
        group = f"bench-wo-{run}"
        children: list[Child] = []
        with database(kind, self.workdir) as url:
            # Migrated before the workers start: two workers migrating a fresh SQLite file at
            # once collide (alembic's _alembic_tmp_work_order table; PostgreSQL takes a lock).
            migrate(url)
            try:
                for index in range(workers):
                    env = self.worker_env(url, group, topics, index)
                    children.append(
                        start_child(
                            f"wo run #{index + 1}",
                            [str(self.wo), "run"],
                            env,
                            self.workdir / f"{group}-{index}.log",
                            int(env["WO_METRICS_PORT"]),
                        )
                    )
                handled = await self._warm_up(children, topics.vehicle_alarms)
                await self._throughput(label, kind, children, topics, handled)
                for load in self.config.loads:
                    await self._latency(kind, children, topics, load, self.config.duration_s)
                if self.config.soak_s and workers == 1 and kind == self.config.databases[-1]:
                    await self._soak(kind, children, topics)
            finally:
                for child in children:
                    child.stop()

    @contextlib.contextmanager
    def _profiling(
        self, children: list[Child], run: str, cpu0: list[float], counts0: list[int]
    ) -> Iterator[None]:
        """Sample each worker while the block runs (--profile), then summarize where its CPU went."""
        names = [f"{run}-{child.pid}" for child in children]
        profilers = [self._profile(child, name) for child, name in zip(children, names, strict=True)]
        try:
            yield
        finally:
            for profiler in profilers:
                if profiler is not None:
                    profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                    profiler.wait(timeout=60)
        if self.config.profile_dir is None:
            return
        for child, name, cpu_before, handled_before in zip(children, names, cpu0, counts0, strict=True):
            path = self.config.profile_dir / f"{name}.txt"
            handled_here = child.read_batches() - handled_before
            if path.exists() and handled_here:
                cpu_us = (cpu_seconds(child.pid) - cpu_before) / handled_here * 1e6
                self.results.profiles += summarize_profile(path, cpu_us)

    def _profile(self, child: Child, name: str) -> subprocess.Popen[bytes] | None:
        """py-spy sampling ``child`` (--profile): collapsed stacks, and a flame graph from them."""
        if self.config.profile_dir is None:
            return None
        py_spy = Path(sys.executable).parent / "py-spy"
        if not py_spy.exists():
            raise BenchmarkError(f"--profile needs py-spy: {Path(sys.executable).parent}/pip install py-spy")
        self.config.profile_dir.mkdir(parents=True, exist_ok=True)
        output = self.config.profile_dir / f"{name}.txt"
        print(f"  profiling pid {child.pid} -> {output}", flush=True)
        return subprocess.Popen(
            [
                str(py_spy),
                "record",
                "--pid",
                str(child.pid),
                "--rate",
                "250",
                "--gil",  # the thread holding the GIL: where the worker's Python CPU goes
                "--format",
                "raw",
                "-o",
                str(output),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / f"py-spy-{name}.log").open("ab"),
        )

    def _handled(self, children: list[Child], at_least: float) -> bool:
        return sum(self._received(children)) >= at_least

    def _received(self, children: list[Child]) -> list[int]:
        counts = []
        for child in children:
            child.check_alive()
            counts.append(child.read_batches())
        return counts

    async def _warm_up(self, children: list[Child], topic: str) -> float:
        """Until every worker has handled a message: all are in the group with partitions."""
        for child in children:

            def answering(child: Child = child) -> bool:
                child.check_alive()
                return child.metrics_answering()

            await asyncio.to_thread(wait_until, answering, START_TIMEOUT_S, f"{child.name}'s metrics", 0.2)
        stream = AlarmStream(f"WU{uuid.uuid4().hex[:4]}")
        sent = 0
        deadline = time.monotonic() + WARMUP_TIMEOUT_S
        while True:
            await produce_one_per_partition(self.bootstrap, topic, stream.take(self.config.partitions))
            sent += self.config.partitions
            try:
                await asyncio.to_thread(
                    wait_until,
                    functools.partial(self._handled, children, sent),
                    30,
                    "the warm-up messages",
                    0.1,
                )
            except BenchmarkError:
                if time.monotonic() > deadline:
                    raise
                continue
            if all(count > 0 for count in self._received(children)):
                return float(sent)
            if time.monotonic() > deadline:
                raise BenchmarkError(f"a worker got no partition: {self._received(children)}")
            await asyncio.sleep(1)

    async def _throughput(
        self, label: str, kind: str, children: list[Child], topics: Topics, handled: float
    ) -> None:
        n = len(self.backlog)
        target = handled + n
        cpu0 = [cpu_seconds(child.pid) for child in children]
        counts0 = self._received(children)
        broker0 = self.broker_cpu()
        started = time.time()
        with self._profiling(children, f"{kind}-{len(children)}w-backlog", cpu0, counts0):
            await produce_backlog(self.bootstrap, topics.vehicle_alarms, self.backlog, self.config.partitions)
            await asyncio.to_thread(
                wait_until,
                functools.partial(self._handled, children, target),
                900,
                "the backlog to be handled",
                0.05,
            )
        finished = max(child.last_batch_at for child in children)  # when the last batch was logged
        cpu = sum(cpu_seconds(child.pid) for child in children) - sum(cpu0)
        broker = self.broker_cpu() - broker0
        for child in children:
            child.record_peak()
        per_worker = [after - before for after, before in zip(self._received(children), counts0, strict=True)]
        self.results.add(
            Row(
                "pipeline: backlog",
                kind,
                len(children),
                rate=n / (finished - started),
                peak_rss_mb=max(child.peak_rss_kb for child in children) / 1024,
                cpu_us=cpu / n * 1e6,
                broker_cpu_us=broker / n * 1e6,
                note="" if len(children) == 1 else "per worker ~" + "/".join(f"{c:,.0f}" for c in per_worker),
            )
        )

    async def _latency(
        self, kind: str, children: list[Child], topics: Topics, load: int, duration_s: float
    ) -> PacedResult:
        print(f"  offered load {load} ev/s for {duration_s:g} s", flush=True)
        before = sum(self._received(children))
        reader = DispatchedReader(self.bootstrap, topics.dispatched)
        await reader.start()
        cpu0 = [cpu_seconds(child.pid) for child in children]
        run = f"{kind}-{len(children)}w-{load}evs"
        try:
            with self._profiling(children, run, cpu0, self._received(children)):
                stream = AlarmStream(f"L{load}{uuid.uuid4().hex[:4]}", seed=load)
                paced = await produce_paced(self.bootstrap, topics.vehicle_alarms, stream, load, duration_s)
            await asyncio.to_thread(
                wait_until,
                functools.partial(self._handled, children, before + paced.sent),
                60 + paced.sent / 50,  # an overloaded worker works off the queue at >= 50 msg/s
                f"the {load} ev/s load to be handled",
                0.1,
            )
            cpu = sum(cpu_seconds(child.pid) for child in children) - sum(cpu0)
            # Let the reader see the last dispatches.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and any(a not in reader.dispatched_ms for a in paced.sent_ms):
                await asyncio.sleep(0.1)
        finally:
            await reader.stop()
        latencies = [
            reader.dispatched_ms[a] - sent for a, sent in paced.sent_ms.items() if a in reader.dispatched_ms
        ]
        missing = len(paced.sent_ms) - len(latencies)
        backlog = self.results.find("pipeline: backlog", kind, len(children))
        overloaded = backlog is not None and backlog.rate is not None and load > backlog.rate
        for child in children:
            child.record_peak()
        self.results.add(
            Row(
                f"pipeline: latency @ {load} ev/s",
                kind,
                len(children),
                offered=float(load),
                rate=paced.sent / paced.seconds,
                p50=percentile(latencies, 50) if latencies else None,
                p95=percentile(latencies, 95) if latencies else None,
                p99=percentile(latencies, 99) if latencies else None,
                peak_rss_mb=max(child.peak_rss_kb for child in children) / 1024,
                cpu_us=cpu / paced.sent * 1e6,
                note=f"{len(latencies):,} orders"
                + (f", {missing} not seen dispatched" if missing else "")
                + (", OVERLOADED: offered > backlog rate, latency = queueing" if overloaded else ""),
            )
        )
        return paced

    async def _soak(self, kind: str, children: list[Child], topics: Topics) -> None:
        """A long run at a fixed load: the worker's RSS sampled every 10 s."""
        load, total = self.config.soak_load, self.config.soak_s
        print(f"  soak: {load} ev/s for {total:g} s, RSS every 10 s", flush=True)
        child = children[0]
        samples: list[tuple[float, float]] = []
        started = time.monotonic()

        async def sample() -> None:
            while True:
                samples.append((time.monotonic() - started, child.rss_kb() / 1024))
                await asyncio.sleep(10)

        sampler = asyncio.create_task(sample())
        try:
            await self._latency(kind, children, topics, load, total)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        self.results.soak = samples
        self.results.rows[-1].what = f"pipeline: soak @ {load} ev/s, {total / 60:g} min"


# --- profiles ------------------------------------------------------------------------------

#: Where a sampled stack's time goes: the frame nearest the leaf that matches one of these
#: (generic frames, the last two, only when no specific one matches).
PROFILE_CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("metrics endpoint (scrapes)", ("prometheus_client/exposition", "streams/supervision.py")),
    ("database: SQLAlchemy + driver", ("storage/", "sqlalchemy/", "psycopg", "sqlite3")),
    ("decode + validate", ("processors/intake.py", "processors/signals.py")),
    ("triage, route, open order", ("processors/",)),
    (
        "publish: dispatched + dead letters",
        ("Outputs.", "aiokafka/producer", "publish", "dispatch_message"),
    ),
    ("metrics + logging", ("prometheus_client", "structlog", "logging/", "streams/metrics.py")),
    ("faust + aiokafka consumer", ("faust/", "mode/", "aiokafka/", "streams/intake_consumer.py")),
    ("intake service glue", ("services/",)),
    ("pydantic", ("pydantic",)),
    ("event loop, selectors, thread pool", ("asyncio/", "threading.py", "selectors.py", "concurrent/")),
]


def summarize_profile(path: Path, cpu_us_per_message: float) -> list[str]:
    """py-spy's collapsed stacks (GIL holder) by category: share of the samples, and that share
    of the worker's CPU time per message."""
    counts: dict[str, int] = {}
    total = 0
    specific, generic = PROFILE_CATEGORIES[:-2], PROFILE_CATEGORIES[-2:]
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")[::-1]
        category = "other"
        for rules in (specific, generic):
            found = next(
                (name for frame in frames for name, parts in rules if any(p in frame for p in parts)), None
            )
            if found is not None:
                category = found
                break
        counts[category] = counts.get(category, 0) + count
    lines = [f"{path.name}: {total:,} samples of the GIL holder, worker CPU {cpu_us_per_message:,.0f} µs/msg"]
    for category, count in sorted(counts.items(), key=lambda item: -item[1]):
        lines.append(f"  {count / total:6.1%}  ~{count / total * cpu_us_per_message:5.0f} µs/msg  {category}")
    return lines


# --- the faust parse-only agent (a child process) ------------------------------------------


def faust_child(config: dict[str, Any]) -> int:
    """A faust app whose agent only decodes (validates) each alarm; prints BENCH READY once
    the warm-up messages are through and BENCH DONE <monotonic time> at the target count."""
    import faust

    from streams.transport import broker_url

    app = faust.App(
        config["group"],
        broker=broker_url(config["bootstrap"], 100),
        datadir=config["datadir"],
        web_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        topic_partitions=config["partitions"],
        broker_rebalance_timeout=3,
        broker_session_timeout=10,
        broker_heartbeat_interval=1,
        broker_commit_every=BATCH_SIZE,
    )
    topic = app.topic(config["topic"], key_type=bytes, value_type=bytes)
    warmup, target = int(config["warmup"]), int(config["target"])
    count = 0

    def counted(n: int) -> None:
        nonlocal count
        before, count = count, count + n
        if before < warmup <= count:
            print("BENCH READY", flush=True)
        if before < target <= count:
            print(f"BENCH DONE {time.monotonic():.6f}", flush=True)

    if config["mode"] == "event":

        @app.agent(topic, name="parse")
        async def parse_each(stream: Any) -> Any:
            async for value in stream:
                decode_event(value, ALARM_CONTRACT)
                counted(1)
                yield None

    else:

        @app.agent(topic, name="parse")
        async def parse_batches(stream: Any) -> Any:
            async for events in stream.noack_take(BATCH_SIZE, BATCH_SECONDS):
                for event in events:
                    decode_event(event.message.value, ALARM_CONTRACT)
                for event in events:
                    await stream.ack(event)
                counted(len(events))
                yield None

    worker = faust.Worker(app, loglevel="info", quiet=True, redirect_stdouts=False)
    worker.spinner = None  # as wo run: no terminal spinner
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


# --- report --------------------------------------------------------------------------------


HEADER = (
    "measurement | database | workers | offered ev/s | rate msg/s | p50 ms | p95 ms | p99 ms "
    "| peak RSS MB | worker CPU µs/msg | broker CPU µs/msg | note"
)


def report(config: Config, results: Results, loads_seen: list[str]) -> tuple[str, bool]:
    lines = [
        "",
        f"Benchmark: {config.messages:,} vehicle alarms (50% new, 30% re-sent, 20% repeats), "
        f"{config.partitions} partitions, embedded Tansu broker, intake batches of {BATCH_SIZE} / "
        f"{BATCH_SECONDS:g} s, one at most every {config.batch_interval_ms} ms, "
        f"worker fetch wait {config.fetch_wait_ms} ms",
        f"machine: {os.cpu_count()} cores; 1-minute load average during the run: {load_summary(loads_seen)}",
        "",
        "| " + HEADER + " |",
        "|" + "---|" * len(HEADER.split(" | ")),
    ]
    lines += ["| " + format_row(row) + " |" for row in results.rows]
    ratios, targets = ratio_lines(config, results)
    lines += ["", "Ratios (same run):", *ratios, "", "Targets:", *targets]
    if results.soak:
        lines += ["", "Soak: worker RSS (MB) every 10 s: " + ", ".join(f"{mb:.0f}" for _, mb in results.soak)]
        lines.append(results.soak_note)
    if results.profiles:
        lines += ["", "Where the worker's time goes (py-spy, backlog phase):", *results.profiles]
    met = not any("MISSED" in line for line in targets)
    return "\n".join(lines), met


def load_summary(loads_seen: list[str]) -> str:
    one_minute = [float(reading.split()[0]) for reading in loads_seen]
    return f"{min(one_minute):.2f} to {max(one_minute):.2f} ({len(one_minute)} readings, one per step)"


def ratio_lines(config: Config, results: Results) -> tuple[list[str], list[str]]:
    ratios: list[str] = []
    targets: list[str] = []
    raw = results.find("aiokafka getmany (raw)")
    faust_take = results.find("faust agent, parse only: noack_take batches (as the pipeline)")
    faust_event = results.find("faust agent, parse only: per event (async for)")
    faust_best = max(
        (row for row in (faust_take, faust_event) if row is not None and row.rate),
        key=lambda row: row.rate or 0,
        default=None,
    )

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    for kind in config.databases:
        one = results.find("pipeline: backlog", kind, 1)
        if one is None or one.rate is None:
            continue
        if faust_best is not None and faust_best.rate:
            ratio = one.rate / faust_best.rate
            ratios.append(f"- pipeline ({kind}, 1 worker) / faust parse-only (best of the two): {ratio:.2f}")
            targets.append(
                f"- pipeline >= {TARGET_PIPELINE_OVER_FAUST:.0%} of faust parse-only ({kind}): "
                f"{ratio:.0%}: {verdict(ratio >= TARGET_PIPELINE_OVER_FAUST)}"
            )
        if raw is not None and raw.rate:
            ratios.append(f"- pipeline ({kind}, 1 worker) / raw aiokafka consume: {one.rate / raw.rate:.3f}")
        if kind == "postgres":
            targets.append(
                f"- >= {TARGET_POSTGRES_RATE:,.0f} signals/s per worker with PostgreSQL: {one.rate:,.0f}: "
                f"{verdict(one.rate >= TARGET_POSTGRES_RATE)}"
            )
        two = results.find("pipeline: backlog", kind, 2)
        if two is not None and two.rate:
            scale = two.rate / one.rate
            ratios.append(f"- 2 workers / 1 worker ({kind}): {scale:.2f}")
            targets.append(
                f"- 2 workers >= {TARGET_SCALING}x one worker ({kind}): {scale:.2f}x: "
                f"{verdict(scale >= TARGET_SCALING)}"
            )
        for workers in config.workers:
            latency = results.find(
                f"pipeline: latency @ {TARGET_P99_LOAD} ev/s", kind, workers, TARGET_P99_LOAD
            )
            if latency is not None and latency.p99 is not None:
                targets.append(
                    f"- p99 event->dispatched < {TARGET_P99_MS:.0f} ms at {TARGET_P99_LOAD} ev/s "
                    f"({kind}, {workers} worker{'s' if workers > 1 else ''}): {latency.p99:,.0f} ms: "
                    f"{verdict(latency.p99 < TARGET_P99_MS)}"
                )
    if faust_best is not None and faust_best.rate and any("signals/s" in t or "ev/s" in t for t in targets):
        low, high = ISSUE_FAUST_RATE
        targets.append(
            f"- (the absolute targets were set where faust parsed {low:,}-{high:,} msg/s; here it "
            f"parses {faust_best.rate:,.0f}: {faust_best.rate / high:.2f}-{faust_best.rate / low:.2f}x that)"
        )
    if faust_take is not None and faust_event is not None and faust_take.rate and faust_event.rate:
        ratios.append(f"- faust parse-only, batches / per event: {faust_take.rate / faust_event.rate:.2f}")
    if raw is not None and raw.rate and faust_best is not None and faust_best.rate:
        ratios.append(f"- faust parse-only / raw aiokafka consume: {faust_best.rate / raw.rate:.3f}")
    if results.soak:
        half = [mb for seconds, mb in results.soak if seconds >= results.soak[-1][0] / 2]
        first = [mb for seconds, mb in results.soak if seconds < results.soak[-1][0] / 2]
        if first and half:
            growth = statistics.mean(half) - statistics.mean(first)
            results.soak_note = (
                f"RSS first half {statistics.mean(first):.0f} MB, second half {statistics.mean(half):.0f} MB "
                f"(+{growth:.0f} MB)"
            )
            targets.append(
                f"- memory flat over the soak (second-half mean within 10% of the first half's): "
                f"{growth:+.0f} MB: {verdict(growth <= 0.1 * statistics.mean(first))}"
            )
    return ratios, targets


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Pipeline throughput and latency against aiokafka's and faust's ceilings.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--messages", type=int, default=30_000, help="backlog size for the rate measurements")
    parser.add_argument("--sqlite", action="store_true", help="run the pipeline on SQLite")
    parser.add_argument(
        "--postgres", action="store_true", help="run the pipeline on PostgreSQL (127.0.0.1:5432)"
    )
    parser.add_argument("--loads", default="500,2000", help="offered loads (ev/s) for the latency runs")
    parser.add_argument("--duration", type=float, default=30, help="seconds of each latency run")
    parser.add_argument("--workers", default="1,2", help="worker counts to run the pipeline with")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--soak", type=float, default=0, help="seconds of a memory run at --soak-load (0: none)"
    )
    parser.add_argument("--soak-load", type=int, default=2000)
    parser.add_argument(
        "--only",
        default="raw,faust,plain,pipeline",
        help="parts to run, comma-separated: raw (aiokafka), faust (parse-only agents), "
        "plain (the worker's services without faust), pipeline (wo run workers)",
    )
    parser.add_argument(
        "--fetch-wait-ms", type=int, default=100, help="the workers' WO_CONSUMER_FETCH_MAX_WAIT_MS"
    )
    parser.add_argument(
        "--batch-interval-ms",
        type=int,
        default=Settings.model_fields["intake_batch_interval_ms"].default,
        help="the workers' WO_INTAKE_BATCH_INTERVAL_MS",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample each worker with py-spy while it works through the backlog: DIR/<run>.txt",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (worker logs)")
    parser.add_argument("--faust-child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


async def run(config: Config, parts: set[str], workdir: Path, loads_seen: list[str]) -> Results:
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        bench = Benchmark(config, broker, workdir)
        steps: list[tuple[str, Callable[[], Any]]] = []
        if "raw" in parts:
            steps.append(("raw aiokafka", bench.raw))
        if "faust" in parts:
            steps += [
                (f"faust parse-only ({mode})", functools.partial(bench.faust_parse_only, mode))
                for mode in ("event", "take")
            ]
        if "plain" in parts:
            for kind in config.databases:
                steps.append((f"Intake.handle alone ({kind})", functools.partial(bench.intake_only, kind)))
        if "pipeline" in parts:
            for kind in config.databases:
                for workers in config.workers:
                    steps.append(
                        (
                            f"pipeline ({kind}, {workers} workers)",
                            functools.partial(bench.pipeline, kind, workers),
                        )
                    )
        for name, step in steps:
            try:
                await step()
            except BenchmarkError as exc:
                # One failed measurement (a timeout, a worker that died) does not lose the others.
                print(f"  !! {name} failed: {exc}", flush=True)
                bench.results.rows.append(Row(f"{name}: FAILED", note=str(exc).splitlines()[0]))
            loads_seen.append(load_average())
    return bench.results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.faust_child:
        return faust_child(json.loads(args.faust_child))
    databases = [kind for kind, chosen in (("sqlite", args.sqlite), ("postgres", args.postgres)) if chosen]
    config = Config(
        messages=args.messages,
        databases=databases or ["sqlite", "postgres"],
        loads=[int(load) for load in args.loads.split(",") if load.strip()],
        duration_s=args.duration,
        workers=[int(n) for n in args.workers.split(",") if n.strip()],
        partitions=args.partitions,
        soak_s=args.soak,
        soak_load=args.soak_load,
        keep=args.keep,
        fetch_wait_ms=args.fetch_wait_ms,
        batch_interval_ms=args.batch_interval_ms,
        profile_dir=args.profile,
    )
    parts = {part.strip() for part in args.only.split(",") if part.strip()}
    workdir = Path(tempfile.mkdtemp(prefix="wo-bench-"))
    print(f"work directory: {workdir} (load average {load_average()})", flush=True)
    loads_seen = [load_average()]
    try:
        results = asyncio.run(run(config, parts, workdir, loads_seen))
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc} (work directory kept: {workdir})", file=sys.stderr)
        return 2
    text, met = report(config, results, loads_seen)
    print(text)
    if not config.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
