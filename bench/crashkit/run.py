"""The run: broker, database and workers up, the workload published while the first
worker is SIGKILLed, then the wait for the group to catch up and the audit."""

from __future__ import annotations

import random
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from crashkit.audit import _audit
from crashkit.config import PARTITIONS, POLICY_DIR, CrashConfig, CrashTestError
from crashkit.kafka_io import Publisher, committed_offsets, dispatched_counter, end_offsets
from crashkit.report import CrashReport
from crashkit.workers import WorkerSlot, database, signed_policy, worker_env
from crashkit.workload import build_workload
from workorder_pipeline.config.settings import Settings, Topics
from workorder_pipeline.services.policy_files import load_policy
from workorder_pipeline.storage.database import migrate
from workorder_pipeline.streams.kafka.admin import ensure_topics
from workorder_pipeline.wo.kafka_cluster import running_broker


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
