#!/usr/bin/env python
"""Failure drills: brokers of a three-node Apache Kafka cluster killed, stopped and restarted
while events flow through ``wo run`` workers; then the crash test's audit.

Each drill starts its own cluster (Apache Kafka 4.4, KRaft, replication factor 3,
``min.insync.replicas`` 2), a fresh database (PostgreSQL on 127.0.0.1:5432 unless
``--database sqlite``) and 1 or 2 workers (``WO_TOPIC_REPLICATION_FACTOR=3``), publishes
bench/crash_test.py's workload (signals of every kind, re-sends, invalid messages,
lifecycle commands) spread over the drill, and in the middle of it:

- ``leader-kill``: SIGKILLs the node leading the most inbound and dispatched partitions,
  starts it again after 10 s and waits until every ISR is full;
- ``isr-loss``: stops (SIGTERM) two of the three nodes, the second 3 s after the first, so
  that each partition has one in-sync replica for 30 s (writes with acks=all must wait),
  then starts both and waits for full ISRs;
- ``rolling-restart``: SIGTERMs each node in turn, starts it, waits until it is in every ISR.

A drill passes with 0 lost and 0 duplicate orders, every order on ``workorders.dispatched``,
every other check of the crash test's audit, no worker exit and the groups' lag back to 0.
It prints a table: those counts, how long intake paused and how long it took to catch up.

    .venv/bin/python bench/failure_drills.py --drill all --workers 2 --events 10000

Exit status: 0 when every check of every drill held, 1 otherwise, 2 when a drill could not
be carried out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:  # loaded by path (the tests): its sibling modules
    sys.path.insert(0, str(BENCH))

from crash_test import CrashTestError  # noqa: E402
from drills.faults import Drill, Timing  # noqa: E402
from drills.report import DrillReport, table  # noqa: E402
from drills.run import DrillConfig, run_drill  # noqa: E402

from workorder_pipeline.config.settings import ProcessingGuarantee  # noqa: E402
from workorder_pipeline.wo.embedded_broker import BrokerStartError  # noqa: E402


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--drill", choices=[*(d.value for d in Drill), "all"], default="all")
    parser.add_argument("--workers", type=int, choices=(1, 2), default=1)
    parser.add_argument("--events", type=int, default=10_000, help="messages on the inbound topics per drill")
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument(
        "--guarantee",
        type=ProcessingGuarantee,
        choices=list(ProcessingGuarantee),
        default=ProcessingGuarantee.at_least_once,
        help="the workers' WO_PROCESSING_GUARANTEE",
    )
    parser.add_argument("--hold", type=float, default=30.0, help="isr-loss: seconds with one replica")
    parser.add_argument("--down", type=float, default=10.0, help="leader-kill: seconds the node is down")
    parser.add_argument(
        "--catch-up-timeout", type=float, default=180.0, help="seconds the groups get to commit everything"
    )
    parser.add_argument("--workdir", type=Path, help="keep every drill's logs under this directory")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directories")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    drills = list(Drill) if args.drill == "all" else [Drill(args.drill)]
    reports: list[DrillReport] = []
    for drill in drills:
        config = DrillConfig(
            drill=drill,
            workers=args.workers,
            events=args.events,
            database="sqlite" if args.database == "sqlite" else "postgres",
            seed=args.seed,
            guarantee=args.guarantee,
            timing=Timing(down_s=args.down, hold_s=args.hold),
            catch_up_timeout_s=args.catch_up_timeout,
            workdir=None if args.workdir is None else args.workdir / drill.value,
            keep_workdir=args.keep,
        )
        progress(f"drill {drill.value}: {args.workers} worker(s), {args.events:,} events")
        try:
            reports.append(run_drill(config, progress))
        except (CrashTestError, BrokerStartError, OSError, TimeoutError) as exc:
            print(f"drill {drill.value} could not run: {exc!r}", file=sys.stderr)
            if reports:
                print(table(reports))
            return 2
        progress(f"drill {drill.value}: {'FAIL' if reports[-1].failures() else 'pass'}")
    print(table(reports))
    return 1 if any(report.failures() for report in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
