"""The stack's ceilings: raw aiokafka, a parse-only faust agent, the services without Kafka."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from benchkit.base import BenchBase
from benchkit.common import ALARM_CONTRACT, BATCH_SIZE, REPO_ROOT, WARMUP_TIMEOUT_S, AlarmStream
from benchkit.kafka_io import produce_backlog, produce_one_per_partition
from benchkit.processes import cpu_seconds, database, start_child, wait_until
from benchkit.results import Row
from workorder_pipeline.config.settings import Topics
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.processors.intake import decode_event
from workorder_pipeline.services.calendar_files import load_calendar
from workorder_pipeline.services.intake import InboundMessage, Intake
from workorder_pipeline.services.policy_files import ReferenceFiles, load_policy
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.repository import WorkOrderRepository

BENCHMARK_SCRIPT = Path(__file__).resolve().parents[1] / "benchmark.py"


class Ceilings(BenchBase):
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
            [sys.executable, str(BENCHMARK_SCRIPT), "--faust-child", json.dumps(child_config)],
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
            compile_policy(load_policy(policy_dir)),
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
        self.results.add(Row(what, kind, broker="none", rate=n / elapsed, cpu_us=cpu / n * 1e6))
