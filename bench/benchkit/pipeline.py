"""The pipeline: wo run workers' backlog rate, latency at fixed loads, the soak."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
import uuid

from benchkit.common import (
    BATCH_SECONDS,
    BATCH_SIZE,
    START_TIMEOUT_S,
    TOPIC_NAMES,
    WARMUP_TIMEOUT_S,
    AlarmStream,
    BenchmarkError,
)
from benchkit.kafka_io import (
    DispatchedReader,
    PacedResult,
    produce_backlog,
    produce_one_per_partition,
    produce_paced,
)
from benchkit.processes import Child, cpu_seconds, database, start_child, wait_until
from benchkit.profiles import Profiling
from benchkit.results import Row, percentile, soak_windows
from workorder_pipeline.config.settings import Topics
from workorder_pipeline.storage.database import migrate
from workorder_pipeline.streams.kafka.admin import ensure_topics
from workorder_pipeline.wo.embedded_broker import free_port


class PipelineRuns(Profiling):
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
            # The guarantee to measure: exactly_once needs --broker kafka.
            WO_PROCESSING_GUARANTEE=os.environ.get("WO_PROCESSING_GUARANTEE", "at_least_once"),
        )
        for name in TOPIC_NAMES:
            env[f"WO_TOPICS__{name.upper()}"] = getattr(topics, name)
        return env

    def start_workers(
        self, children: list[Child], workers: int, url: str, group: str, topics: Topics
    ) -> None:
        """``workers`` ``wo run`` processes of ``group``, each added to ``children`` as it starts
        (the caller stops them, those started before a failure too)."""
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
                self.start_workers(children, workers, url, group, topics)
                handled = await self._warm_up(children, topics.vehicle_alarms)
                await self._throughput(label, kind, children, topics, handled)
                for load in self.config.loads:
                    await self._latency(kind, children, topics, load, self.config.duration_s)
                if self.config.soak_s and workers == 1 and kind == self.config.databases[-1]:
                    await self._soak(kind, children, topics)
            finally:
                for child in children:
                    child.stop()

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
        reader = DispatchedReader(self.bootstrap, topics.dispatched, self.config.partitions)
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
        self.last_latencies = [
            (sent, reader.dispatched_ms[a] - sent)
            for a, sent in paced.sent_ms.items()
            if a in reader.dispatched_ms
        ]
        latencies = [latency for _, latency in self.last_latencies]
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
        """A long run at a fixed load: the worker's and the broker's RSS sampled every 10 s,
        latency per minute of sending."""
        load, total = self.config.soak_load, self.config.soak_s
        print(f"  soak: {load} ev/s for {total:g} s on {self.broker.label}, RSS every 10 s", flush=True)
        child = children[0]
        samples: list[tuple[float, float]] = []
        broker_samples: list[tuple[float, float]] = []
        started = time.monotonic()

        async def sample() -> None:
            while True:
                samples.append((time.monotonic() - started, child.rss_kb() / 1024))
                broker_samples.append((time.monotonic() - started, self.broker_rss_mb()))
                await asyncio.sleep(10)

        sampler = asyncio.create_task(sample())
        try:
            await self._latency(kind, children, topics, load, total)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        self.results.soak, self.results.soak_broker = samples, broker_samples
        self.results.soak_windows = soak_windows(self.last_latencies, samples, broker_samples)
        self.results.rows[-1].what = f"pipeline: soak @ {load} ev/s, {total / 60:g} min"
