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
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:  # loaded by path (the tests): its sibling package crashkit/
    sys.path.insert(0, str(BENCH))

from crashkit.audit import _audit  # noqa: E402
from crashkit.config import (  # noqa: E402
    PARTITIONS,
    POLICY_DIR,
    CrashConfig,
    CrashTestError,
    Database,
)
from crashkit.kafka_io import (  # noqa: E402
    Publisher,
    committed_offsets,
    dispatched_counter,
    end_offsets,
    read_topic,
)
from crashkit.report import CrashReport  # noqa: E402
from crashkit.run import _wait_caught_up, run_crash_test  # noqa: E402
from crashkit.workers import WorkerSlot, database, signed_policy, worker_env  # noqa: E402
from crashkit.workload import build_workload  # noqa: E402

from workorder_pipeline.config.settings import ProcessingGuarantee  # noqa: E402
from workorder_pipeline.wo.kafka_cluster import BrokerKind  # noqa: E402

#: What the tests and the failure drills use of the crash test (bench/drills/run.py).
__all__ = [
    "PARTITIONS",
    "POLICY_DIR",
    "CrashConfig",
    "CrashReport",
    "CrashTestError",
    "Database",
    "Publisher",
    "WorkerSlot",
    "_audit",
    "_wait_caught_up",
    "build_workload",
    "committed_offsets",
    "database",
    "dispatched_counter",
    "end_offsets",
    "main",
    "read_topic",
    "run_crash_test",
    "signed_policy",
    "worker_env",
]


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
