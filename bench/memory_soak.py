#!/usr/bin/env python
"""Memory of ``wo run`` workers fed at a constant rate for minutes (issue 22's soak).

Starts an Apache Kafka node (one KRaft node, as ``bench/benchmark.py --broker kafka``) and a
throw-away PostgreSQL database (or SQLite with ``--sqlite``), ``--workers`` workers of one
consumer group (one by default; each its own process, as the benchmark's rows and
``wo run --processes N`` run them), waits until each handles messages, then offers
``--rate`` vehicle alarms a second (the benchmark's mix) for ``--minutes``. Every
``--sample-s`` seconds it reads each worker's RSS (``VmRSS`` in /proc/PID/status), the
messages sent and handled (the workers' ``intake_batch`` log lines) and the load average;
with several workers the figures below are of their RSS summed, each worker's last RSS is
printed too. It prints the samples, the first-half and second-half mean RSS, the
slope of RSS over the second half (MB/min, least squares), the achieved consumption rate
and the lag (sent - handled) when sending stops.

A worker that does not keep up holds a growing queue: its memory then measures the queue,
not steady state, and the script says so and names a rate it carried. Exit status: 0 when
the worker kept up, 1 when it did not, 2 when the run could not be carried out.

    .venv/bin/python bench/memory_soak.py                         # 2,000 ev/s, 10 minutes
    .venv/bin/python bench/memory_soak.py --rate 1500 --minutes 2 # does one worker carry 1,500?
    .venv/bin/python bench/memory_soak.py --workers 2             # two worker processes
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
for _path in (REPO_ROOT, REPO_ROOT / "bench"):  # run as a script: the packages, and benchkit/
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from benchkit.common import BATCH_SIZE, TOPIC_NAMES, AlarmStream, BenchmarkError, Config  # noqa: E402
from benchkit.kafka_io import produce_paced  # noqa: E402
from benchkit.pipeline import PipelineRuns  # noqa: E402
from benchkit.processes import Child, bench_broker, database, load_average  # noqa: E402

from workorder_pipeline.config.settings import Settings, Topics  # noqa: E402
from workorder_pipeline.storage.database import migrate  # noqa: E402
from workorder_pipeline.streams.kafka.admin import ensure_topics  # noqa: E402
from workorder_pipeline.wo.embedded_broker import BrokerStartError  # noqa: E402
from workorder_pipeline.wo.kafka_cluster import BrokerKind  # noqa: E402

#: Kept up: at the end, less than this many seconds of sending waits in the queue.
KEPT_UP_LAG_S = 5.0


@dataclass(frozen=True)
class Sample:
    seconds: float
    #: The workers' RSS summed (one worker: its RSS).
    rss_mb: float
    #: Each worker's RSS.
    worker_mb: tuple[float, ...]
    sent: int
    handled: int
    load: str


@dataclass(frozen=True)
class Summary:
    first_half_mb: float
    second_half_mb: float
    slope_mb_per_min: float
    #: Messages handled per second over the sending (from the first to the last sample).
    consumed_per_s: float
    sent_per_s: float
    lag_at_end: int
    kept_up: bool


def slope_per_minute(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB), in MB per minute (0 with fewer than two points)."""
    if len(points) < 2:
        return 0.0
    mean_x = statistics.mean(x for x, _ in points)
    mean_y = statistics.mean(y for _, y in points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread * 60


def summarize(samples: Sequence[Sample], rate: float) -> Summary:
    """Halves by time: the samples before and from the middle of the sampled span."""
    middle = (samples[0].seconds + samples[-1].seconds) / 2
    first = [s for s in samples if s.seconds < middle]
    second = [s for s in samples if s.seconds >= middle]
    elapsed = samples[-1].seconds - samples[0].seconds
    last = samples[-1]
    lag = last.sent - last.handled
    return Summary(
        first_half_mb=statistics.mean(s.rss_mb for s in first) if first else 0.0,
        second_half_mb=statistics.mean(s.rss_mb for s in second),
        slope_mb_per_min=slope_per_minute([(s.seconds, s.rss_mb) for s in second]),
        consumed_per_s=(last.handled - samples[0].handled) / elapsed if elapsed else 0.0,
        sent_per_s=(last.sent - samples[0].sent) / elapsed if elapsed else 0.0,
        lag_at_end=lag,
        kept_up=lag <= KEPT_UP_LAG_S * rate,
    )


def report(samples: Sequence[Sample], summary: Summary, rate: float, label: str) -> str:
    workers = len(samples[-1].worker_mb)
    who = "one wo run worker" if workers == 1 else f"{workers} wo run workers (RSS summed)"
    lines = [
        "",
        f"Memory soak: {who}, {label}, offered {rate:,.0f} ev/s for {samples[-1].seconds / 60:.1f} min",
        "",
        "| s | worker RSS MB | sent | handled | lag | load average |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {s.seconds:.0f} | {s.rss_mb:.1f} | {s.sent:,} | {s.handled:,} | {s.sent - s.handled:,} "
        f"| {s.load} |"
        for s in samples
    ]
    if workers > 1:
        each = ", ".join(f"{mb:.1f}" for mb in samples[-1].worker_mb)
        lines += ["", f"each worker's RSS at the end: {each} MB"]
    lines += [
        "",
        f"RSS mean: first half {summary.first_half_mb:.1f} MB, second half {summary.second_half_mb:.1f} MB "
        f"({summary.second_half_mb - summary.first_half_mb:+.1f} MB)",
        f"RSS slope over the second half: {summary.slope_mb_per_min:+.2f} MB/min",
        f"sent {summary.sent_per_s:,.0f} ev/s, consumed {summary.consumed_per_s:,.0f} msg/s; "
        f"lag when sending stopped: {summary.lag_at_end:,} messages "
        f"({summary.lag_at_end / rate:.1f} s of sending)",
    ]
    if summary.kept_up:
        lines.append("The workers kept up: the RSS above is their steady state at this rate.")
    else:
        carried = int(summary.consumed_per_s * 0.8 // 100 * 100)
        lines.append(
            f"The workers did NOT keep up ({summary.consumed_per_s:,.0f} of {rate:,.0f} ev/s): "
            f"{summary.lag_at_end:,} messages waited when sending stopped, so this RSS is not a memory "
            "test of steady state at this rate (the queue waits in Kafka; a worker takes batches "
            f"of at most {BATCH_SIZE}). Run again at a rate they carry, e.g. --rate {max(carried, 100)}, "
            "or with more --workers."
        )
    return "\n".join(lines)


class Soak(PipelineRuns):
    """Workers of one group on their own topics and database, fed at a constant rate."""

    async def run(
        self, kind: str, rate: float, minutes: float, sample_s: float, workers: int
    ) -> list[Sample]:
        run = uuid.uuid4().hex[:6]
        topics = Topics(**{name: f"soak.{run}.{name.replace('_', '-')}" for name in TOPIC_NAMES})
        ensure_topics(self.bootstrap, topics.all(), self.config.partitions, 1)
        group = f"soak-wo-{run}"
        with database(kind, self.workdir) as url:
            migrate(url)
            children: list[Child] = []
            try:
                self.start_workers(children, workers, url, group, topics)
                await self._warm_up(children, topics.vehicle_alarms)
                pids = ", ".join(str(child.pid) for child in children)
                print(
                    f"workers {pids} in their group; offering {rate:,.0f} ev/s for {minutes:g} min",
                    flush=True,
                )
                return await self._feed(children, topics.vehicle_alarms, rate, minutes * 60, sample_s)
            finally:
                for child in children:
                    child.stop()

    async def _feed(
        self, children: list[Child], topic: str, rate: float, seconds: float, sample_s: float
    ) -> list[Sample]:
        stream = AlarmStream(f"S{uuid.uuid4().hex[:4]}")
        handled0 = sum(child.read_batches() for child in children)
        started = time.monotonic()
        samples: list[Sample] = []

        def sample() -> Sample:
            for child in children:
                child.check_alive()
            each = tuple(child.rss_kb() / 1024 for child in children)
            taken = Sample(
                time.monotonic() - started,
                sum(each),
                each,
                stream.count,
                sum(child.read_batches() for child in children) - handled0,
                load_average(),
            )
            print(
                f"  {taken.seconds:5.0f} s  RSS {taken.rss_mb:6.1f} MB  sent {taken.sent:>9,}  "
                f"handled {taken.handled:>9,}  load {taken.load}",
                flush=True,
            )
            return taken

        async def sampler() -> None:
            while True:  # the first sample after sample_s: the worker under load, not idle
                await asyncio.sleep(sample_s - (time.monotonic() - started) % sample_s)
                samples.append(sample())

        task = asyncio.create_task(sampler())
        try:
            await produce_paced(self.bootstrap, topic, stream, rate, seconds)
        finally:
            task.cancel()
        samples.append(sample())  # when sending stopped: the lag at the end
        return samples


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="RSS of one wo run worker fed at a constant rate on Apache Kafka.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rate", type=float, default=2000, help="offered vehicle alarms per second")
    parser.add_argument("--minutes", type=float, default=10, help="minutes of sending")
    parser.add_argument("--sample-s", type=float, default=10, help="seconds between RSS samples")
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL (127.0.0.1:5432)")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--workers", type=int, default=1, help="worker processes of one consumer group")
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (worker and broker logs)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    kind = "sqlite" if args.sqlite else "postgres"
    config = Config(
        messages=0,
        databases=[kind],
        loads=[],
        duration_s=0,
        workers=[args.workers],
        partitions=args.partitions,
        soak_s=args.minutes * 60,
        soak_load=int(args.rate),
        keep=args.keep,
        fetch_wait_ms=100,
        batch_interval_ms=Settings.model_fields["intake_batch_interval_ms"].default,
        brokers=[BrokerKind.KAFKA],
    )
    workdir = Path(tempfile.mkdtemp(prefix="wo-soak-"))
    print(f"work directory: {workdir} (load average {load_average()})", flush=True)

    async def soak() -> tuple[str, list[Sample]]:
        with bench_broker(BrokerKind.KAFKA, workdir / "kafka") as broker:
            soak = Soak(config, broker, workdir)
            samples = await soak.run(kind, args.rate, args.minutes, args.sample_s, args.workers)
            return f"{broker.label}, {kind}", samples

    try:
        label, samples = asyncio.run(soak())
    except (BenchmarkError, BrokerStartError) as exc:
        print(f"soak failed: {exc} (work directory kept: {workdir})", file=sys.stderr)
        return 2
    summary = summarize(samples, args.rate)
    print(report(samples, summary, args.rate, label))
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if summary.kept_up else 1


if __name__ == "__main__":
    sys.exit(main())
