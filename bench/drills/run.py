"""One failure drill end to end: three brokers, a database, ``wo run`` workers, the crash
test's workload published around a broker fault, then the crash test's audit."""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import crash_test as crash

from drills.faults import FAULTS, Drill, Timing
from drills.probes import LagSampler, pause
from drills.report import DrillReport
from workorder_pipeline.config.settings import ProcessingGuarantee, Settings, Topics
from workorder_pipeline.services.policy_files import load_policy
from workorder_pipeline.storage.database import migrate
from workorder_pipeline.streams.kafka.admin import ensure_topics
from workorder_pipeline.wo.kafka_cluster import BrokerKind, running_broker

BROKERS = 3
#: Worker log events counted in the report (retries and failures the workers survived).
COUNTED_EVENTS = ("worker_waiting", "offsets_not_committed", "unprocessable")


@dataclass(frozen=True)
class DrillConfig:
    drill: Drill
    workers: int = 1
    events: int = 10_000
    database: crash.Database = "postgres"
    #: A database to use as is (created and dropped by the caller); default: a new one.
    database_url: str | None = None
    seed: int = 21
    #: The workers' WO_PROCESSING_GUARANTEE (exactly once: the audit also fails on re-published orders).
    guarantee: ProcessingGuarantee = ProcessingGuarantee.at_least_once
    #: Events flow this long before the fault, and this long after it (roughly).
    lead_s: float = 10.0
    tail_s: float = 10.0
    timing: Timing = field(default_factory=Timing)
    catch_up_timeout_s: float = 180.0
    workdir: Path | None = None
    keep_workdir: bool = False

    def expected_fault_s(self) -> float:
        return {
            Drill.LEADER_KILL: self.timing.down_s + 15,
            Drill.ISR_LOSS: self.timing.hold_s + self.timing.gap_s + 20,
            Drill.ROLLING_RESTART: 35.0,
        }[self.drill]

    def crash_config(self, workdir: Path) -> Any:
        duration = self.lead_s + self.expected_fault_s() + self.tail_s
        return crash.CrashConfig(
            signals=self.events,
            kills=0,
            workers=self.workers,
            database=self.database,
            broker=BrokerKind.KAFKA,
            seed=self.seed,
            database_url=self.database_url,
            guarantee=self.guarantee,
            chunk=max(10, round(self.events / (duration * 2))),  # about two chunks a second
            catch_up_timeout_s=self.catch_up_timeout_s,
            workdir=workdir,
        )


class DrillPublisher(crash.Publisher):
    """The crash test's publisher, whose writes wait out a broker outage instead of failing."""

    producer_options: ClassVar[Mapping[str, Any]] = {
        "acks": "all",
        "linger_ms": 5,
        "request_timeout_ms": 30_000,
        "delivery_timeout_ms": 300_000,  # retries are unlimited (kafka-python's default)
        "max_in_flight_requests_per_connection": 1,
    }
    send_timeout_s: ClassVar[float] = 300.0


def run_drill(config: DrillConfig, say: Callable[[str], None]) -> DrillReport:
    """Run one drill and audit it (see the package's docstring)."""
    started = time.monotonic()
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix=f"wo-drill-{config.drill.value}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    topics = Topics()
    crash_config = config.crash_config(workdir)
    workload = crash.build_workload(crash_config, topics, load_policy(crash.POLICY_DIR), datetime.now(UTC))
    report = DrillReport(
        config.drill, config.workers, workload.signal_messages, crash.CrashReport(crash_config, "")
    )
    report.workdir = str(workdir)
    try:
        with (
            running_broker(BrokerKind.KAFKA, workdir, BROKERS) as broker,
            crash.database(crash_config, workdir) as url,
        ):
            report.audit.backend = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
            ensure_topics(broker.bootstrap, topics.all(), crash.PARTITIONS, broker.replication_factor)
            migrate(url)
            _drive(config, crash_config, report, workload, broker, url, topics, say)
            say("auditing the database and the output topics")
            crash._audit(report.audit, workload, url, broker.bootstrap, topics)
    finally:
        report.elapsed_s = time.monotonic() - started
        if config.workdir is None and not config.keep_workdir and not report.failures():
            shutil.rmtree(workdir, ignore_errors=True)
            report.workdir = ""
    return report


def _drive(
    config: DrillConfig,
    crash_config: Any,
    report: DrillReport,
    workload: Any,
    broker: Any,
    url: str,
    topics: Topics,
    say: Callable[[str], None],
) -> None:
    """Workers and load around the fault, until the group has committed everything."""
    group = f"wo-drill-{uuid.uuid4().hex[:8]}"
    workdir = Path(report.workdir)
    policy_dir, signing_key = crash.signed_policy(workdir)
    env = {
        **crash.worker_env(broker.bootstrap, url, group, config.guarantee, policy_dir),
        "WO_TOPIC_REPLICATION_FACTOR": str(BROKERS),
    }
    slots = [crash.WorkerSlot(n, env, workdir) for n in range(config.workers)]
    inbound = sorted(topics.inbound())
    count_dispatched, release = crash.dispatched_counter(url)
    duration = config.lead_s + config.expected_fault_s() + config.tail_s
    publisher = DrillPublisher(broker.bootstrap, workload.chunks, duration, count_dispatched, signing_key)
    sampler = LagSampler(broker.bootstrap, group, inbound)

    def tick() -> None:
        for slot in slots:
            slot.restart_if_exited()

    try:
        for slot in slots:
            slot.start()
        _wait(lambda: all(slot.assigned() for slot in slots), 120, tick, "the workers to get partitions")
        say(f"{config.workers} worker(s) in the group; publishing {workload.signal_messages:,} signals")
        sampler.start()
        publisher.start()
        published_from = time.time()
        pause(config.lead_s, tick)
        fault = FAULTS[config.drill](broker.cluster, [*inbound, topics.dispatched], config.timing, tick, say)
        report.fault = fault
        _wait(lambda: not publisher.is_alive(), 600, tick, "the publisher to finish")
        if publisher.error is not None:
            report.publish_error = repr(publisher.error)
        groups = {group: inbound, Settings(consumer_group=group).commands_consumer_group: [topics.commands]}
        report.audit.caught_up = crash._wait_caught_up(broker.bootstrap, groups, slots, crash_config, say)
        report.lag_at_end = _lag(broker.bootstrap, groups)
        report.final_exit_codes = [slot.stop() for slot in slots]
    finally:
        publisher.stop.set()
        sampler.stop.set()
        for thread in (publisher, sampler):
            if thread.is_alive():
                thread.join(timeout=30)
        for slot in slots:
            slot.kill()
        release()
    report.unexpected_exits = [code for slot in slots for code in slot.unexpected_exits]
    texts = [slot.log_text() for slot in slots]
    report.log_counts = {name: sum(text.count(f'"{name}"') for text in texts) for name in COUNTED_EVENTS}
    _intake_figures(report, _batch_times(texts), published_from, sampler)


def _wait(probe: Callable[[], bool], timeout_s: float, tick: Callable[[], None], what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise crash.CrashTestError(f"timed out after {timeout_s:g} s waiting for {what}")
        tick()
        time.sleep(0.2)


def _lag(bootstrap: str, groups: dict[str, list[str]]) -> int:
    lag = 0
    for group, group_topics in groups.items():
        end = crash.end_offsets(bootstrap, group_topics)
        committed = crash.committed_offsets(bootstrap, group, list(end))
        lag += sum(max(0, offset - committed.get(tp, 0)) for tp, offset in end.items())
    return lag


def _batch_times(log_texts: list[str]) -> list[float]:
    """When each intake batch was done (wall clock), from the workers' JSON logs."""
    times = []
    for text in log_texts:
        for line in text.splitlines():
            if '"intake_batch"' not in line:
                continue
            try:
                document = json.loads(line)
            except ValueError:
                continue
            if document.get("event") == "intake_batch":
                times.append(datetime.fromisoformat(document["timestamp"]).timestamp())
    return sorted(times)


def _intake_figures(
    report: DrillReport, times: list[float], published_from: float, sampler: LagSampler
) -> None:
    """The longest pause of intake overlapping the fault, the load's normal gap before it,
    and how long the group took after the pause to commit what had been published by then."""
    report.lag_samples, report.lag_sample_failures = len(sampler.samples), sampler.failed
    report.lag_sample_error = sampler.last_error
    fault = report.fault
    if not fault.started:
        return
    # The first seconds of load: the workers' first batches come in bursts.
    before = [t for t in times if published_from + 3 <= t <= fault.started]
    report.normal_gap_s = max((b - a for a, b in itertools.pairwise(before)), default=None)
    healed = fault.healed or time.time()
    gaps = [
        (b - a, b)
        for a, b in zip(times, [*times[1:], time.time()], strict=True)
        if b > fault.started and a < healed
    ]
    if not gaps:
        return
    report.pause_s, resumed = max(gaps)
    report.max_lag = sampler.lag_max(fault.started)
    caught = sampler.caught_up_at(resumed)
    report.catch_up_s = None if caught is None else caught - resumed
