#!/usr/bin/env python
"""Crash test: signals and commands in, workers SIGKILLed at random moments, then an audit.

Starts its own broker (Apache Kafka in KRaft mode, or with ``--broker tansu`` the embedded
one) and a fresh database (a PostgreSQL database created
on 127.0.0.1:5432 and dropped at the end, or a SQLite file), runs ``wo run`` worker
processes against them and publishes a deterministic mix of vehicle alarms, suspects,
check-in failures, complaints, exact re-sends, invalid messages and lifecycle commands
(accept then start, or a reassignment by the command center, which publishes a new version
of the order on the dispatched topic) while the first worker is SIGKILLed and restarted at random moments.
When the consumer group has committed everything, the database and the output topics
are compared with what was sent, and a table of figures is printed:

    .venv/bin/python bench/crash_test.py --signals 20000 --kills 20 --workers 1 --database postgres

The expected outcome of every signal (new order, merged into which order, suppressed) is
computed in-process by the same pure triage the workers run, over the same signals in
the same order. Exit status: 0 when nothing was duplicated, lost or applied twice and
every other check held, 1 otherwise (the table says what), 2 when the run itself could
not be carried out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

import psycopg
import sqlalchemy as sa
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from psycopg import sql

from config.settings import ProcessingGuarantee, Settings, Topics
from processors.intake import Rejection, decode_event, implausible_time
from processors.signals import to_signal
from processors.triage import Action, BatchTriageState, ReferenceIndex, triage
from processors.workorders import work_order_id
from schemas.policy import Policy
from schemas.workorder import COMMAND_CENTER
from services.policy_files import ReferenceFiles, load_policy
from services.sender_keys import SigningKey, policy_dir_with_sender, signed_headers
from storage.database import create_engine, migrate
from storage.repository import source_key
from storage.tables import (
    processed_command,
    suppressed_signal,
    work_order,
    work_order_event,
    work_order_source,
)
from wo.embedded_broker import ensure_topics, free_port
from wo.kafka_cluster import BrokerKind, running_broker

REPO_ROOT = Path(__file__).resolve().parents[1]
WO = REPO_ROOT / ".venv" / "bin" / "wo"
POLICY_DIR = REPO_ROOT / "policy"
POSTGRES_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
PARTITIONS = 6
OFFICERS = ["JS0682-0117", "JS0682-0342"]
#: What a worker logs (through aiokafka) when the group gives it partitions.
ASSIGNED = b"Setting newly assigned partitions"

Database = Literal["sqlite", "postgres"]


class CrashTestError(RuntimeError):
    """The run could not be carried out (not a finding about the pipeline)."""


@dataclass(frozen=True)
class CrashConfig:
    signals: int = 20_000
    kills: int = 20
    workers: int = 1
    database: Database = "postgres"
    broker: BrokerKind = BrokerKind.KAFKA
    #: The workers' WO_PROCESSING_GUARANTEE; exactly once fails the run on any re-published order.
    guarantee: ProcessingGuarantee = ProcessingGuarantee.at_least_once
    seed: int = 1
    #: A database to use as is (already created, not dropped); default: create one.
    database_url: str | None = None
    #: Messages published per chunk; chunks are spread over the kill phase.
    chunk: int = 500
    #: The share of kills that land while the worker starts or joins the group: uniform in
    #: ``startup_kill_s`` seconds after its start. The others land uniform in
    #: ``working_kill_s`` seconds after it was given partitions, while batches are in flight.
    startup_kill_share: float = 0.3
    startup_kill_s: tuple[float, float] = (0.5, 8.0)
    working_kill_s: tuple[float, float] = (0.5, 8.0)
    #: Seconds between a SIGKILL and the restart: uniform in [0, this].
    restart_delay_s: float = 1.0
    #: Commands go for orders of signals published this many chunks earlier.
    command_lag_chunks: int = 1
    #: How long a chunk's commands wait for their orders to be dispatched (then go anyway).
    command_wait_s: float = 4.0
    #: Bound of the final wait for the consumer group to commit everything.
    catch_up_timeout_s: float = 300.0
    #: Where logs go; default: a temporary directory, removed unless the run failed.
    workdir: Path | None = None
    keep_workdir: bool = False

    def __post_init__(self) -> None:
        if self.signals < 1 or self.kills < 0 or self.workers not in (1, 2) or self.chunk < 1:
            raise ValueError("signals >= 1, kills >= 0, workers 1 or 2, chunk >= 1")
        for low, high in (self.startup_kill_s, self.working_kill_s):
            if not 0 <= low <= high:
                raise ValueError(f"bad range of seconds before a kill: {low}, {high}")


# --- the workload -----------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    topic: str
    key: bytes
    value: bytes


@dataclass
class Expected:
    """What the pipeline must end up with, computed in-process with the pure triage."""

    #: source key -> the order it must be recorded under (None: recorded as suppressed).
    recorded_as: dict[str, str | None] = field(default_factory=dict)
    #: order id -> its unit (actor of its commands).
    orders: dict[str, str] = field(default_factory=dict)
    merged: int = 0
    suppressed: int = 0


@dataclass
class Chunk:
    signals: list[Message]
    #: Commands for orders of an earlier chunk (plus some re-sent), and those orders' ids.
    commands: list[Message] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)


@dataclass
class Workload:
    chunks: list[Chunk]
    expected: Expected
    signal_messages: int
    resends: int
    invalid: int
    command_messages: int
    command_resends: int
    command_ids: set[str]
    by_kind: Counter[str]
    #: Orders reassigned by a command, and to which unit.
    reassigned: dict[str, str] = field(default_factory=dict)


class _Generator:
    """Deterministic (per seed) signals; only their times follow the clock."""

    def __init__(self, seed: int, topics: Topics, now: datetime, signals: int) -> None:
        self.rng = random.Random(seed)
        self.tag = f"CT{seed}"
        self.topics = topics
        # Event times: within the last two hours, increasing (the pipeline dead-letters
        # times from the future and very old ones).
        self.base = now - timedelta(hours=2)
        self.step_s = min(1.0, 5400 / max(1, signals))
        self.now = now
        self.counters: Counter[str] = Counter()
        #: (plate, alarm type, vehicle class) of recent alarms that made an order: repeats reuse them.
        self.alarm_keys: list[tuple[str, str, str]] = []
        self.suspect_keys: list[tuple[str, str]] = []
        self.enterprises: list[str] = []

    def _next(self, what: str) -> int:
        self.counters[what] += 1
        return self.counters[what]

    def _plate(self, office: str) -> str:
        n = self._next(f"plate-{office}")
        if n >= 100_000:
            raise ValueError("at most 99,999 plates per office letter: send fewer signals")
        return f"苏{office}{n:05d}"

    def _iso(self, seconds: float) -> str:
        return (self.base + timedelta(seconds=seconds * self.step_s)).isoformat()

    def message(self) -> tuple[str, Message]:
        """A fresh valid signal: its kind and message."""
        roll = self.rng.random()
        if roll < 0.55:
            return "vehicle_alarm", self.alarm()
        if roll < 0.72:
            return "suspect", self.suspect()
        if roll < 0.82:
            return "checkin_failure", self.checkin()
        return "complaint", self.complaint()

    def alarm(self) -> Message:
        n = self._next("alarm")
        roll = self.rng.random()
        speed: dict[str, float] = {}
        if roll < 0.15 and self.alarm_keys:
            # The same vehicle and alarm type again, a moment later: merged into its order.
            plate, alarm_type, vehicle_class = self.rng.choice(self.alarm_keys[-300:])
            if alarm_type == "overspeed":
                speed = {"speed_kmh": 130.0, "speed_limit_kmh": 100.0}
        elif roll < 0.19:
            # 4 % over the limit: suppressed by the overspeed-under-10pct threshold.
            plate, alarm_type, vehicle_class = self._plate("A"), "overspeed", "coach"
            speed = {"speed_kmh": 104.0, "speed_limit_kmh": 100.0}
        else:
            plate = self._plate("A")
            alarm_type = self.rng.choice(
                ["fatigue_driving", "route_deviation", "adas_forward_collision", "overspeed", "offline"]
            )
            vehicle_class = self.rng.choice(["coach", "taxi", "heavy_truck", "dangerous_goods"])
            if alarm_type == "overspeed":
                speed = {"speed_kmh": 130.0, "speed_limit_kmh": 100.0}
            self.alarm_keys.append((plate, alarm_type, vehicle_class))
        event: dict[str, Any] = {
            "schema": "vehicle-alarm/1",
            "alarm_id": f"{self.tag}-A{n:07d}",
            "platform_id": "js-key-vehicles",
            "plate": plate,
            "plate_color": "yellow",
            "vehicle_class": vehicle_class,
            "alarm_type": alarm_type,
            "level": 2,
            "occurred_at": self._iso(n),
            "location": {"lat": 32.4418, "lon": 120.6307, "region_code": "320682", "road": "G15"},
            "duration_s": 95,
            **speed,
        }
        return Message(self.topics.vehicle_alarms, plate.encode(), _json(event))

    def suspect(self) -> Message:
        n = self._next("suspect")
        roll = self.rng.random()
        passes = 40
        if roll < 0.10 and self.suspect_keys:
            plate, suspect_type = self.rng.choice(self.suspect_keys[-300:])  # merged
        else:
            plate = self._plate("B")
            suspect_type = self.rng.choice(
                ["high_frequency_illegal_operation", "illegal_ride_hailing", "dangerous_goods_off_base"]
            )
            if roll < 0.15:
                passes = 5  # suppressed: suspect-few-passes
            else:
                self.suspect_keys.append((plate, suspect_type))
        event = {
            "schema": "suspect/1",
            "entry_id": f"{self.tag}-S{n:07d}",
            "list_date": (self.now + timedelta(hours=8)).date().isoformat(),  # a China day
            "plate": plate,
            "suspect_type": suspect_type,
            "window_days": 30,
            "pass_count": passes,
            "checkpoints": [{"id": "KK-320682-017", "region_code": "320682", "passes": passes}],
            "score": 0.8,
        }
        return Message(self.topics.suspects, plate.encode(), _json(event))

    def checkin(self) -> Message:
        n = self._next("checkin")
        if self.rng.random() < 0.10 and self.enterprises:
            enterprise = self.rng.choice(self.enterprises[-300:])  # merged
        else:
            enterprise = f"91320682CT{self._next('enterprise'):08d}"
            self.enterprises.append(enterprise)
        event = {
            "schema": "checkin-failure/1",
            "check_id": f"{self.tag}-K{n:07d}",
            "platform_id": "ent-monitor-crash-test",
            "enterprise": {"id": enterprise, "name": "如皋市崩溃测试运输有限公司"},
            "issued_at": self._iso(n),
            "answer_window_s": 600,
            "outcome": "no_response",
            "responded_at": None,
            "vehicles_moving": [],
        }
        return Message(self.topics.checkin_failures, enterprise.encode(), _json(event))

    def complaint(self) -> Message:
        n = self._next("complaint")
        ticket = f"{self.tag}-C{n:07d}"
        category = self.rng.choice(["refusal", "overcharging", "driving_school", "vehicle_repair"])
        event = {
            "schema": "complaint/1",
            "ticket_id": ticket,
            "channel": self.rng.choice(["12328", "12345"]),
            "received_at": self._iso(n),
            "due_at": (self.now + timedelta(days=5)).isoformat(),
            "category": category,
            "subject": {"plate": self._plate("C"), "place": "如皋站出租车候客区", "region_code": "320682"},
            "summary": "崩溃测试投诉：司机拒载，要求核实处理。",
            "complainant": {"name": "测试", "phone": "13900000000"},
            "urgent": self.rng.random() < 0.1,
        }
        return Message(self.topics.complaints, ticket.encode(), _json(event))

    def invalid(self) -> Message:
        n = self._next("invalid")
        if n % 2:
            return Message(self.topics.vehicle_alarms, b"garbage", b"not json {" + str(n).encode())
        event = {"schema": "vehicle-alarm/1", "alarm_id": f"{self.tag}-X{n:07d}", "plate": "not a plate"}
        return Message(self.topics.vehicle_alarms, b"garbage", _json(event))


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()


def build_workload(config: CrashConfig, topics: Topics, policy: Policy, now: datetime) -> Workload:
    """The chunks to publish, and what the pipeline must make of them."""
    generator = _Generator(config.seed, topics, now, config.signals)
    rng = random.Random(config.seed + 7)
    index = ReferenceIndex(ReferenceFiles(POLICY_DIR).current)
    contracts = topics.inbound()
    state = BatchTriageState()
    expected = Expected()
    by_kind: Counter[str] = Counter()
    chunks: list[Chunk] = []
    created_by_chunk: list[list[str]] = []
    recent: list[Message] = []
    resends = invalid = 0
    sent = 0
    while sent < config.signals:
        chunk: list[Message] = []
        created: list[str] = []
        while len(chunk) < config.chunk and sent < config.signals:
            roll = rng.random()
            if roll < 0.03 and recent:
                chunk.append(rng.choice(recent[-1000:]))  # byte for byte again: a platform re-send
                resends += 1
            elif roll < 0.04:
                chunk.append(generator.invalid())
                invalid += 1
            else:
                kind, message = generator.message()
                event = decode_event(message.value, contracts[message.topic])
                if isinstance(event, Rejection):
                    raise AssertionError(f"generated an invalid signal: {event}")
                signal_ = to_signal(event, index.checkpoint_regions())
                if implausible_time(signal_.occurred_at, now, timedelta(days=400), timedelta(minutes=60)):
                    raise AssertionError(f"generated an implausible event time: {signal_.occurred_at}")
                outcome = triage(signal_, policy, index, state, now)
                key = source_key(signal_.kind, signal_.source_id)
                if outcome.action is Action.create:
                    order_id = work_order_id(signal_)
                    state.record(outcome, order_id, now)
                    expected.recorded_as[key] = order_id
                    expected.orders[order_id] = outcome.route.unit
                    created.append(order_id)
                elif outcome.action is Action.merge and outcome.merge_into is not None:
                    state.record(outcome, None, now)
                    expected.recorded_as[key] = outcome.merge_into.id
                    expected.merged += 1
                else:
                    state.record(outcome, None, now)
                    expected.recorded_as[key] = None
                    expected.suppressed += 1
                chunk.append(message)
                recent.append(message)
                by_kind[kind] += 1
            sent += 1
        chunks.append(Chunk(chunk))
        created_by_chunk.append(created)

    # Lifecycle commands: accept then start (same key: one partition, in order) for 40 % of
    # the orders made lag chunks earlier, a quarter of them reassigned by the command
    # center instead, and 10 % of each chunk's commands sent again.
    command_ids: set[str] = set()
    reassigned: dict[str, str] = {}
    squads = sorted(unit for unit in policy.units.ids() if unit != COMMAND_CENTER)
    command_messages = command_resends = 0
    previous: list[Message] = []
    for n, part in enumerate(chunks):
        source = n - config.command_lag_chunks
        for order_id in created_by_chunk[source] if source >= 0 else []:
            if rng.random() >= 0.4:
                continue
            part.targets.append(order_id)
            if rng.random() < 0.25:
                to_unit = rng.choice([unit for unit in squads if unit != expected.orders[order_id]])
                reassigned[order_id] = to_unit
                plan = [("reassign", COMMAND_CENTER, {"to_unit": to_unit})]
            else:
                plan = [(action, expected.orders[order_id], {}) for action in ("accept", "start")]
            for action, unit, extra in plan:
                command_id = f"{order_id}-{action}"
                command = {
                    "schema": "workorder-command/1",
                    "command_id": command_id,
                    "work_order_id": order_id,
                    "action": action,
                    "actor": {"unit": unit, "officer_ids": OFFICERS},
                    "at": now.isoformat(),
                    **extra,
                }
                part.commands.append(Message(topics.commands, order_id.encode(), _json(command)))
                command_ids.add(command_id)
        again = [m for m in previous if rng.random() < 0.1]
        command_resends += len(again)
        command_messages += len(part.commands) + len(again)
        previous = list(part.commands)
        part.commands += again
    return Workload(
        chunks,
        expected,
        signal_messages=sent,
        resends=resends,
        invalid=invalid,
        command_messages=command_messages,
        command_resends=command_resends,
        command_ids=command_ids,
        by_kind=by_kind,
        reassigned=reassigned,
    )


# --- Kafka ------------------------------------------------------------------------------


def _partitions(consumer: Any, topics: list[str]) -> list[Any]:
    found = []
    for topic in topics:
        deadline = time.monotonic() + 20
        while not (partitions := consumer.partitions_for_topic(topic)):
            if time.monotonic() > deadline:
                raise CrashTestError(f"no partitions for topic {topic}")
            time.sleep(0.1)
        found += [TopicPartition(topic, p) for p in sorted(partitions)]
    return found


def end_offsets(bootstrap: str, topics: list[str]) -> dict[Any, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, request_timeout_ms=10_000)
    try:
        result: dict[Any, int] = consumer.end_offsets(_partitions(consumer, topics))
        return result
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str, partitions: list[Any]) -> dict[Any, int]:
    """The group's committed offsets, read without joining it (0 where none)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, request_timeout_ms=10_000
    )
    try:
        return {tp: consumer.committed(tp, timeout_ms=10_000) or 0 for tp in partitions}
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str, timeout_s: float = 120) -> list[Any]:
    """Every record now in ``topic``, as a read_committed consumer sees it (no aborted ones)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        request_timeout_ms=10_000,
    )
    try:
        partitions = _partitions(consumer, [topic])
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise CrashTestError(f"could not read {topic} to its end within {timeout_s:g} s")
            for batch in consumer.poll(timeout_ms=500, max_records=5000).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


class Publisher(threading.Thread):
    """Publishes the chunks' signals spread evenly over ``duration_s``; a chunk's commands
    follow once their orders are dispatched (``dispatched`` counts them), or after
    ``command_wait_s``: commands for orders not made yet are refused, which is fine too."""

    #: The producer's settings; a failure drill lets writes wait longer for the brokers.
    producer_options: ClassVar[Mapping[str, Any]] = {
        "acks": "all",
        "linger_ms": 5,
        "retries": 10,
        "request_timeout_ms": 30_000,
        "max_in_flight_requests_per_connection": 1,  # retries keep each partition's order
    }
    #: How long one chunk's sends may take to be acknowledged.
    send_timeout_s: ClassVar[float] = 60.0

    def __init__(
        self,
        bootstrap: str,
        chunks: list[Chunk],
        duration_s: float,
        dispatched: Callable[[list[str]], int],
        signing_key: SigningKey,
        command_wait_s: float = 10.0,
    ) -> None:
        super().__init__(name="crash-publisher", daemon=True)
        self.bootstrap = bootstrap
        #: Commands are signed with it (a key the workers trust: ``signed_policy``).
        self.signing_key = signing_key
        self.chunks = chunks
        self.duration_s = duration_s
        self.dispatched = dispatched
        self.command_wait_s = command_wait_s
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.sent = 0

    def run(self) -> None:
        try:
            producer = KafkaProducer(bootstrap_servers=self.bootstrap, **self.producer_options)
        except BaseException as exc:
            self.error = exc
            return
        try:
            start = time.monotonic()
            for n, chunk in enumerate(self.chunks):
                at = start + self.duration_s * n / len(self.chunks)
                if self.stop.wait(max(0.0, at - time.monotonic())):
                    return
                self._send(producer, chunk.signals)
                if chunk.targets:
                    give_up = time.monotonic() + self.command_wait_s
                    while time.monotonic() < give_up and not self.stop.is_set():
                        with contextlib.suppress(Exception):  # the database may be busy: ask again
                            if self.dispatched(chunk.targets) >= len(chunk.targets):
                                break
                        self.stop.wait(0.5)
                self._send(producer, chunk.commands, signed=True)
        except BaseException as exc:
            self.error = exc
        finally:
            producer.close(timeout=10)

    def _send(self, producer: Any, messages: list[Message], signed: bool = False) -> None:
        futures = [
            producer.send(
                m.topic,
                key=m.key,
                value=m.value,
                headers=signed_headers(self.signing_key, m.value) if signed else None,
            )
            for m in messages
        ]
        producer.flush(timeout=self.send_timeout_s)
        for future in futures:
            future.get(timeout=self.send_timeout_s)
        self.sent += len(messages)


def dispatched_counter(url: str) -> tuple[Callable[[list[str]], int], Callable[[], None]]:
    """How many of some orders are dispatched; and how to release its connections."""
    engine = create_engine(url)

    def count(ids: list[str]) -> int:
        query = sa.select(sa.func.count()).where(
            work_order.c.id.in_(ids), work_order.c.dispatched_at.is_not(None)
        )
        with engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    return count, engine.dispose


# --- workers ----------------------------------------------------------------------------


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


# --- the database -----------------------------------------------------------------------


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


# --- the report -------------------------------------------------------------------------


@dataclass
class CrashReport:
    config: CrashConfig
    backend: str
    signal_messages: int = 0
    resends: int = 0
    invalid: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    distinct_sent: int = 0
    expected_orders: int = 0
    expected_merged: int = 0
    expected_suppressed: int = 0
    orders: int = 0
    sources_recorded: int = 0
    merged: int = 0
    suppressed: int = 0
    #: Publisher ids recorded twice, plus orders that should not exist (a second order for
    #: what should have been merged or recorded once).
    duplicates: int = 0
    #: Publisher ids sent but recorded nowhere.
    lost: int = 0
    #: Sources recorded under another order than triage gives them (or not sent at all).
    misrecorded: int = 0
    occurrences_off: int = 0
    not_dispatched: int = 0
    dispatched_messages: int = 0
    #: Order versions (order, recipient, unit in charge) seen more than once, read_committed.
    republished: int = 0
    #: Of those, versions published by a reassignment command (the outbox, not intake).
    command_versions: int = 0
    command_versions_republished: int = 0
    dead_letters_expected: int = 0
    dead_letters_distinct: int = 0
    command_messages: int = 0
    command_resends: int = 0
    distinct_commands: int = 0
    commands_recorded: int = 0
    command_outcomes: Counter[str] = field(default_factory=Counter)
    commands_lost: int = 0
    applied_twice: int = 0
    #: Command ids with more than one audit event of any kind (applied or refused).
    handled_twice: int = 0
    status_mismatches: int = 0
    lifecycle_messages: int = 0
    lifecycle_republished: int = 0
    #: Commands recorded as handled of which no lifecycle event was ever published.
    lifecycle_missing: int = 0
    lifecycle_missing_ids: list[str] = field(default_factory=list)
    caught_up: bool = False
    kills: int = 0
    starts: int = 0
    unexpected_exits: list[int] = field(default_factory=list)
    batch_retries: int = 0
    final_exit_codes: list[int | None] = field(default_factory=list)
    elapsed_s: float = 0.0
    workdir: str = ""

    def failures(self) -> list[str]:
        """What makes the run fail: duplicates, losses, commands applied twice, and any other
        broken invariant of the processing guarantee."""
        checks = {
            "duplicates": self.duplicates,
            "lost": self.lost,
            "commands applied twice": self.applied_twice,
            "commands handled twice": self.handled_twice,
            "commands lost": self.commands_lost,
            "sources under the wrong order": self.misrecorded,
            "orders never dispatched": self.not_dispatched,
            "occurrence counts off": self.occurrences_off,
            "order status not what its commands made it": self.status_mismatches,
            "dead letters lost": self.dead_letters_expected - self.dead_letters_distinct,
            "orders other than expected": abs(self.orders - self.expected_orders),
            "lifecycle events never published": self.lifecycle_missing,
            "orders seen twice by a read_committed consumer (exactly once)": (
                self.republished if self.config.guarantee is ProcessingGuarantee.exactly_once else 0
            ),
            "lifecycle events seen twice by a read_committed consumer (exactly once)": (
                self.lifecycle_republished if self.config.guarantee is ProcessingGuarantee.exactly_once else 0
            ),
        }
        found = [f"{name}: {value}" for name, value in checks.items() if value]
        if not self.caught_up:
            found.append("the consumer group did not commit everything in time")
        return found

    def table(self) -> str:
        c = self.config
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(self.command_outcomes.items())) or "none"
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.by_kind.items()))
        rows: list[tuple[str, str]] = [
            ("signals sent (messages on the inbound topics)", f"{self.signal_messages:,}"),
            ("  exact re-sends", f"{self.resends:,}"),
            ("  invalid (must be dead-lettered)", f"{self.invalid:,}"),
            ("distinct publisher ids sent", f"{self.distinct_sent:,} ({kinds})"),
            ("orders (expected)", f"{self.orders:,} ({self.expected_orders:,})"),
            (
                "sources recorded (work_order_source + suppressed_signal)",
                f"{self.sources_recorded:,} "
                f"({self.sources_recorded - self.suppressed:,} + {self.suppressed:,})",
            ),
            ("  merged into an open order (expected)", f"{self.merged:,} ({self.expected_merged:,})"),
            ("  suppressed (expected)", f"{self.suppressed:,} ({self.expected_suppressed:,})"),
            ("duplicates", f"{self.duplicates}"),
            ("lost", f"{self.lost}"),
            ("sources under the wrong order", f"{self.misrecorded}"),
            ("orders never dispatched", f"{self.not_dispatched}"),
            (
                f"re-published on workorders.dispatched, read_committed ({c.guarantee.value})",
                f"{self.republished:,} ({self.dispatched_messages:,} messages)",
            ),
            (
                "  of which versions made by reassign commands",
                f"{self.command_versions_republished:,} ({self.command_versions:,} versions)",
            ),
            (
                "dead letters (distinct sources / expected)",
                f"{self.dead_letters_distinct:,} / {self.dead_letters_expected:,}",
            ),
            ("commands sent (messages)", f"{self.command_messages:,} ({self.command_resends:,} re-sent)"),
            ("distinct command ids sent", f"{self.distinct_commands:,}"),
            ("commands recorded (processed_command)", f"{self.commands_recorded:,} ({outcomes})"),
            ("commands lost", f"{self.commands_lost}"),
            ("commands applied twice", f"{self.applied_twice}"),
            ("commands handled twice (any audit event)", f"{self.handled_twice}"),
            ("orders whose status disagrees with their commands", f"{self.status_mismatches}"),
            (
                f"lifecycle events re-published, read_committed ({c.guarantee.value})",
                f"{self.lifecycle_republished:,} ({self.lifecycle_messages:,} messages)",
            ),
            ("lifecycle events never published (recorded commands)", f"{self.lifecycle_missing}"),
            ("consumer group caught up", "yes" if self.caught_up else "NO"),
            ("kills (SIGKILL)", f"{self.kills}"),
            ("worker starts", f"{self.starts}"),
            (
                "unexpected worker exits",
                f"{len(self.unexpected_exits)} {self.unexpected_exits or ''}".strip(),
            ),
            ("outages a task waited out (worker_waiting lines)", f"{self.batch_retries}"),
            ("exit codes at the final SIGTERM", " ".join(str(code) for code in self.final_exit_codes)),
            ("elapsed", f"{self.elapsed_s:.1f} s"),
        ]
        width = max(len(name) for name, _ in rows)
        title = (
            f"crash test: {c.workers} worker(s), {self.backend}, seed {c.seed}, "
            f"{c.signals:,} signals, {c.kills} kills"
        )
        lines = [title, "-" * (width + 24)]
        lines += [f"{name:<{width}}  {value}" for name, value in rows]
        failures = self.failures()
        lines.append("-" * (width + 24))
        lines.append("RESULT: " + ("FAIL: " + "; ".join(failures) if failures else "pass"))
        return "\n".join(lines)


# --- the run ----------------------------------------------------------------------------


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


def run_crash_test(config: CrashConfig, progress: Callable[[str], None] | None = None) -> CrashReport:
    """Run the crash test and audit the result (see the module's docstring)."""
    say = progress or (lambda _message: None)
    started = time.monotonic()
    created_workdir = config.workdir is None
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix="wo-crash-"))
    workdir.mkdir(parents=True, exist_ok=True)
    topics = Topics()
    policy = load_policy(POLICY_DIR)
    now = datetime.now(UTC)
    workload = build_workload(config, topics, policy, now)
    report = CrashReport(config, backend="")
    report.workdir = str(workdir)
    failed = True
    try:
        with running_broker(config.broker, workdir) as broker, database(config, workdir) as url:
            report.backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
            ensure_topics(broker.bootstrap, topics.all(), PARTITIONS, broker.replication_factor)
            migrate(url)  # once, before the workers: none is killed in the middle of it
            group = f"wo-crash-{uuid.uuid4().hex[:8]}"
            policy_dir, signing_key = signed_policy(workdir)
            env = worker_env(broker.bootstrap, url, group, config.guarantee, policy_dir)
            slots = [WorkerSlot(n, env, workdir) for n in range(config.workers)]
            # A kill cycle takes about this long: a start (~5 s), joining (~3 s), some work.
            mean_cycle_s = 8.0 + sum(config.working_kill_s) / 2 * (1 - config.startup_kill_share)
            count_dispatched, release = dispatched_counter(url)
            duration_s = max(1.0, config.kills * mean_cycle_s * 0.8)
            publisher = Publisher(
                broker.bootstrap,
                workload.chunks,
                duration_s,
                count_dispatched,
                signing_key,
                config.command_wait_s,
            )
            try:
                for slot in slots:
                    slot.start()
                say(
                    f"broker {broker.bootstrap}, {report.backend}, {config.workers} worker(s); publishing "
                    f"{workload.signal_messages:,} signals and {workload.command_messages:,} commands "
                    f"in {len(workload.chunks)} chunks"
                )
                publisher.start()
                overrun_s = 120 + 3 * duration_s + len(workload.chunks) * config.command_wait_s
                report.kills = _chaos(config, slots, publisher, overrun_s, say)
                # The intake consumer's group reads the inbound topics; faust's, the commands.
                groups = {
                    group: list(topics.inbound()),
                    Settings(consumer_group=group).commands_consumer_group: [topics.commands],
                }
                report.caught_up = _wait_caught_up(broker.bootstrap, groups, slots, config, say)
                report.final_exit_codes = [slot.stop() for slot in slots]
            finally:
                # Before the broker stops and the database is dropped.
                publisher.stop.set()
                if publisher.is_alive():
                    publisher.join(timeout=30)
                for slot in slots:
                    slot.kill()
                release()
            report.starts = sum(slot.starts for slot in slots)
            report.unexpected_exits = [code for slot in slots for code in slot.unexpected_exits]
            report.batch_retries = sum(slot.log_text().count('"worker_waiting"') for slot in slots)
            say("auditing the database and the output topics")
            _audit(report, workload, url, broker.bootstrap, topics)
        failed = bool(report.failures())
        return report
    finally:
        report.elapsed_s = time.monotonic() - started
        if created_workdir and not config.keep_workdir and not failed:
            shutil.rmtree(workdir, ignore_errors=True)
            report.workdir = ""


def _chaos(
    config: CrashConfig,
    slots: list[WorkerSlot],
    publisher: Publisher,
    deadline_s: float,
    say: Callable[[str], None],
) -> int:
    """SIGKILL the first worker at random moments and restart it, while anything is being
    published and at least ``kills`` times. Returns the number of kills.

    Some kills land while it starts or joins the group (a moment after its start), most
    while it works (a moment after it was given partitions, when batches are in flight).
    """
    rng = random.Random(config.seed + 13)
    victim = slots[0]
    kills = 0
    deadline = time.monotonic() + deadline_s

    def done() -> bool:
        return kills >= config.kills and not publisher.is_alive()

    def wait(until: Callable[[], bool], longest_s: float) -> None:
        give_up = time.monotonic() + longest_s
        while not until() and time.monotonic() < give_up:
            time.sleep(0.05)
            for slot in slots:
                slot.restart_if_exited()

    while not done():
        if publisher.error is not None:
            raise CrashTestError(f"publishing failed: {publisher.error!r}")
        if time.monotonic() > deadline:
            raise CrashTestError(f"the kill phase overran ({kills} kills, published {publisher.sent:,})")
        if rng.random() < config.startup_kill_share:
            wait(lambda: False, rng.uniform(*config.startup_kill_s))
        else:
            wait(victim.assigned, 60)
            wait(lambda: False, rng.uniform(*config.working_kill_s))
        if done():
            break
        victim.kill()
        kills += 1
        if kills % 5 == 0:
            say(f"{kills} kills, {publisher.sent:,} messages published")
        time.sleep(rng.uniform(0, config.restart_delay_s))
        victim.start()
    if publisher.error is not None:
        raise CrashTestError(f"publishing failed: {publisher.error!r}")
    say(f"{kills} kills, everything published ({publisher.sent:,} messages)")
    return kills


def _wait_caught_up(
    bootstrap: str,
    groups: dict[str, list[str]],
    slots: list[WorkerSlot],
    config: CrashConfig,
    say: Callable[[str], None],
) -> bool:
    """Until each group has committed every message of its topics (bounded)."""
    ends = {group: end_offsets(bootstrap, topics) for group, topics in groups.items()}
    total = sum(sum(end.values()) for end in ends.values())
    deadline = time.monotonic() + config.catch_up_timeout_s
    last_note = time.monotonic()
    while True:
        for slot in slots:
            slot.restart_if_exited()
        lag = 0
        for group, end in ends.items():
            try:
                committed = committed_offsets(bootstrap, group, list(end))
            except Exception as exc:  # the broker may be busy: ask again
                say(f"reading committed offsets failed: {exc!r}")
                committed = {}
            lag += sum(max(0, offset - committed.get(tp, 0)) for tp, offset in end.items())
        if lag == 0:
            return True
        if time.monotonic() > deadline:
            say(f"not caught up after {config.catch_up_timeout_s:g} s: {lag:,} of {total:,} not committed")
            return False
        if time.monotonic() - last_note > 15:
            say(f"waiting for the group to catch up: {lag:,} of {total:,} messages not committed yet")
            last_note = time.monotonic()
        time.sleep(1)


def _audit(report: CrashReport, workload: Workload, url: str, bootstrap: str, topics: Topics) -> None:
    expected = workload.expected
    report.signal_messages = workload.signal_messages
    report.resends = workload.resends
    report.invalid = workload.invalid
    report.by_kind = workload.by_kind
    report.distinct_sent = len(expected.recorded_as)
    report.expected_orders = len(expected.orders)
    report.expected_merged = expected.merged
    report.expected_suppressed = expected.suppressed
    report.command_messages = workload.command_messages
    report.command_resends = workload.command_resends
    report.distinct_commands = len(workload.command_ids)

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            sources = [(r.source_key, r.work_order_id) for r in conn.execute(sa.select(work_order_source))]
            suppressed = [r.source_key for r in conn.execute(sa.select(suppressed_signal.c.source_key))]
            orders = list(
                conn.execute(
                    sa.select(
                        work_order.c.id,
                        work_order.c.status,
                        work_order.c.unit,
                        work_order.c.copied_to,
                        work_order.c.dispatched_at,
                        work_order.c.occurrences,
                    )
                )
            )
            commands = list(
                conn.execute(sa.select(processed_command.c.command_id, processed_command.c.outcome))
            )
            events = list(
                conn.execute(
                    sa.select(
                        work_order_event.c.work_order_id, work_order_event.c.type, work_order_event.c.detail
                    )
                    .where(work_order_event.c.actor != "pipeline")
                    .order_by(work_order_event.c.id)
                )
            )
    finally:
        engine.dispose()

    # Signals.
    recorded: Counter[str] = Counter([key for key, _ in sources] + suppressed)
    recorded_as: dict[str, str | None] = {key: order for key, order in sources}
    recorded_as.update({key: None for key in suppressed})
    report.orders = len(orders)
    report.sources_recorded = sum(recorded.values())
    report.suppressed = len(suppressed)
    report.merged = len(sources) - len(orders)
    twice = sum(count - 1 for count in recorded.values() if count > 1)
    extra_orders = sum(1 for order in orders if order.id not in expected.orders)
    report.duplicates = twice + extra_orders
    report.lost = sum(1 for key in expected.recorded_as if key not in recorded)
    report.misrecorded = sum(
        1
        for key, order in recorded_as.items()
        if key not in expected.recorded_as or expected.recorded_as[key] != order
    )
    per_order = Counter(order for _, order in sources)
    report.occurrences_off = sum(1 for order in orders if order.occurrences != per_order[order.id])
    report.not_dispatched = sum(1 for order in orders if order.dispatched_at is None)

    # One message per order version and recipient: its unit, and each unit it is copied to
    # (抄送), keyed by the recipient; a reassignment makes a version for the new unit. More
    # than that: published again after a crash.
    dispatched = Counter(
        (document["work_order_id"], bytes(r.key).decode(), document["squad"])
        for r in read_topic(bootstrap, topics.dispatched)
        for document in [json.loads(r.value)]
    )
    report.dispatched_messages = sum(dispatched.values())
    report.republished = report.dispatched_messages - len(dispatched)
    by_command = {(order_id, unit, unit) for order_id, unit in workload.reassigned.items()}
    report.command_versions = len(by_command)
    report.command_versions_republished = sum(n - 1 for v, n in dispatched.items() if v in by_command)
    received = {(order_id, key) for order_id, key, _ in dispatched}
    for order in orders:
        recipients = [order.unit, *(unit for unit in order.copied_to.split(",") if unit)]
        if order.dispatched_at is not None and any((order.id, unit) not in received for unit in recipients):
            report.not_dispatched += 1

    dead = {
        (d["source"]["topic"], d["source"]["partition"], d["source"]["offset"])
        for d in (json.loads(r.value) for r in read_topic(bootstrap, topics.dead_letters))
    }
    report.dead_letters_expected = workload.invalid
    report.dead_letters_distinct = len(dead)

    # Commands.
    report.commands_recorded = len(commands)
    report.command_outcomes = Counter(str(row.outcome) for row in commands)
    recorded_commands = {str(row.command_id) for row in commands}
    report.commands_lost = len(workload.command_ids - recorded_commands)
    applied: Counter[str] = Counter()
    handled: Counter[str] = Counter()
    applied_events: dict[str, set[str]] = {}
    for event in events:
        detail = event.detail if isinstance(event.detail, dict) else json.loads(event.detail)
        command_id = detail.get("command_id")
        if command_id is None:
            continue
        handled[command_id] += 1
        if event.type != "command_rejected":
            applied[command_id] += 1
            applied_events.setdefault(event.work_order_id, set()).add(str(event.type))
    report.applied_twice = sum(1 for count in applied.values() if count > 1)
    report.handled_twice = sum(1 for count in handled.values() if count > 1)
    # A reassignment applied (one sent before its order existed is refused) is a new version.
    applied_versions = {v for v in by_command if "reassigned" in applied_events.get(v[0], set())}
    report.not_dispatched += len(applied_versions - set(dispatched))
    for order in orders:
        done = applied_events.get(order.id, set())
        want = "in_progress" if "started" in done else "accepted" if "accepted" in done else "dispatched"
        if order.status != want:
            report.status_mismatches += 1

    lifecycle = Counter(
        json.loads(r.value).get("command_id") for r in read_topic(bootstrap, topics.lifecycle)
    )
    report.lifecycle_messages = sum(lifecycle.values())
    report.lifecycle_republished = report.lifecycle_messages - len(lifecycle)
    missing = sorted(recorded_commands - set(lifecycle))
    report.lifecycle_missing = len(missing)
    report.lifecycle_missing_ids = missing[:20]


# --- command line -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--signals", type=int, default=20_000, help="messages on the inbound topics")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs of the first worker (at least)")
    parser.add_argument("--workers", type=int, choices=(1, 2), default=1)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="postgres")
    parser.add_argument("--broker", type=BrokerKind, choices=list(BrokerKind), default=BrokerKind.KAFKA)
    parser.add_argument(
        "--guarantee",
        type=ProcessingGuarantee,
        choices=list(ProcessingGuarantee),
        default=ProcessingGuarantee.at_least_once,
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=500, help="messages per published chunk")
    parser.add_argument(
        "--working-kill",
        type=float,
        nargs=2,
        default=(0.5, 8.0),
        metavar=("MIN", "MAX"),
        help="most kills land this many seconds after the worker was given partitions",
    )
    parser.add_argument("--catch-up-timeout", type=float, default=300.0)
    parser.add_argument("--workdir", type=Path, help="keep logs here (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    database_kind: Database = "sqlite" if args.database == "sqlite" else "postgres"
    config = CrashConfig(
        signals=args.signals,
        kills=args.kills,
        workers=args.workers,
        database=database_kind,
        broker=args.broker,
        guarantee=args.guarantee,
        seed=args.seed,
        chunk=args.chunk,
        working_kill_s=(args.working_kill[0], args.working_kill[1]),
        catch_up_timeout_s=args.catch_up_timeout,
        workdir=args.workdir,
        keep_workdir=args.keep,
    )

    def progress(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    try:
        report = run_crash_test(config, progress)
    except (CrashTestError, OSError) as exc:
        print(f"crash test could not run: {exc}", file=sys.stderr)
        return 2
    print(report.table())
    if report.workdir:
        print(f"logs: {report.workdir}")
    if report.lifecycle_missing_ids:
        print(f"commands without a lifecycle event (first 20): {' '.join(report.lifecycle_missing_ids)}")
    return 1 if report.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
