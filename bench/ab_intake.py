#!/usr/bin/env python
"""Two versions of the intake's storage, alternated on this shared machine: each run is
``Intake.handle`` and the dispatched mark (as a worker calls them, no Kafka) over the
benchmark's vehicle alarms, in a fresh PostgreSQL database, in a child process that imports
one tree; the trees take turns, and the medians are printed. Reported per alarm: the
client's CPU, the PostgreSQL backends' CPU (read from /proc, so PostgreSQL must run on this
machine) and the wall time; ``storage/`` is the part of the client's CPU spent in the intake's
storage calls (the batch's lookups and writes, its transaction, the dispatched mark).

    .venv/bin/python bench/ab_intake.py /path/to/main-checkout /path/to/branch --rounds 3
    .venv/bin/python bench/ab_intake.py ../main-checkout . --rounds 3 --sqlite
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CHILD = "--child"


def backends_cpu_s(engine: Any) -> float:
    """CPU seconds used so far by the PostgreSQL backends connected to the engine's database."""
    with engine.connect() as conn:
        pids = conn.exec_driver_sql(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        ).scalars()
        ticks = 0
        for pid in pids:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


class StorageClock:
    """This thread's CPU spent in storage/ on the intake's behalf: the intake batch's methods,
    its transaction (begin, the writes at its end, commit) and the dispatched mark."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, owner: type, name: str) -> None:
        original = getattr(owner, name, None)
        if original is None:
            return
        clock = self

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                clock.seconds += time.thread_time() - started

        setattr(owner, name, timed)

    def install(self, repository_class: Any, batch_class: type) -> None:
        for name in vars(batch_class):
            if not name.startswith("_") and name != "flush" and callable(getattr(batch_class, name)):
                self.wrap(batch_class, name)
        self.wrap(repository_class, "mark_dispatched")
        opened = repository_class.intake_batch
        clock = self

        @contextlib.contextmanager
        def timed_batch(repository: Any, now: datetime) -> Iterator[Any]:
            started = time.thread_time()
            with opened(repository, now) as batch:
                clock.seconds += time.thread_time() - started
                yield batch
                started = time.thread_time()
            clock.seconds += time.thread_time() - started

        repository_class.intake_batch = timed_batch


def child(tree: Path, messages: int, batch: int, kind: str) -> dict[str, float]:
    """One run in this process, on the tree first in sys.path."""
    sys.path[:0] = [str(tree), str(tree / "bench")]
    from benchkit.common import AlarmStream
    from benchkit.processes import database

    from workorder_pipeline.config.settings import Topics
    from workorder_pipeline.processors.compiled_policy import compile_policy
    from workorder_pipeline.services.calendar_files import load_calendar
    from workorder_pipeline.services.intake import InboundMessage, Intake
    from workorder_pipeline.services.policy_files import ReferenceFiles, load_policy
    from workorder_pipeline.storage.database import create_engine, migrate
    from workorder_pipeline.storage.intake_uow import IntakeBatch
    from workorder_pipeline.storage.repository import WorkOrderRepository

    storage = StorageClock()
    storage.install(WorkOrderRepository, IntakeBatch)

    with tempfile.TemporaryDirectory() as workdir, database(kind, Path(workdir)) as url:
        migrate(url)
        engine = create_engine(url)
        reference, topics = ReferenceFiles(tree / "policy"), Topics()
        intake = Intake(
            compile_policy(load_policy(tree / "policy")),
            WorkOrderRepository(engine),
            topics.inbound(),
            reference=lambda: reference.current,
            calendar=load_calendar(tree / "policy"),
        )
        alarms = [
            InboundMessage(topics.vehicle_alarms, 0, offset, m.key, m.value)
            for offset, m in enumerate(AlarmStream("PR").take(messages + batch))
        ]
        done = [intake.handle(alarms[:batch], datetime.now(UTC))]  # warm-up, not counted
        server_cpu = backends_cpu_s if kind == "postgres" else (lambda _engine: 0.0)
        server0, client0 = server_cpu(engine), resource.getrusage(resource.RUSAGE_SELF)
        storage.seconds = 0.0
        started = time.monotonic()
        for start in range(batch, len(alarms), batch):
            now = datetime.now(UTC)
            result = intake.handle(alarms[start : start + batch], now)
            intake.dispatched(result.to_dispatch, now)
            done.append(result)
        wall = time.monotonic() - started
        client1, server1 = resource.getrusage(resource.RUSAGE_SELF), server_cpu(engine)
        engine.dispose()
    client = client1.ru_utime + client1.ru_stime - client0.ru_utime - client0.ru_stime
    return {
        "client_us": client / messages * 1e6,
        "storage_us": storage.seconds / messages * 1e6,
        "server_us": (server1 - server0) / messages * 1e6,
        "wall_us": wall / messages * 1e6,
    }


def main() -> int:
    if sys.argv[1:2] == [CHILD]:
        print(json.dumps(child(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])))
        return 0
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("trees", nargs=2, type=Path, help="two checkouts: before, after")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    args = parser.parse_args()
    runs: dict[Path, list[dict[str, float]]] = {tree: [] for tree in args.trees}
    loads = []
    for _ in range(args.rounds):
        for tree in args.trees:
            loads.append(os.getloadavg()[0])
            command = [sys.executable, __file__, CHILD, str(tree), str(args.messages), str(args.batch)]
            command.append("sqlite" if args.sqlite else "postgres")
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            runs[tree].append(json.loads(out.strip().splitlines()[-1]))
            print(tree, runs[tree][-1], flush=True)
    print(f"load average {min(loads):.1f}–{max(loads):.1f}; medians of {args.rounds} runs, per alarm:")
    for tree, measured in runs.items():
        medians = {key: statistics.median(run[key] for run in measured) for key in measured[0]}
        rate = 1e6 / medians["wall_us"]
        print(
            f"  {tree}: client CPU {medians['client_us']:.0f} µs (storage/ "
            f"{medians['storage_us']:.0f}), PostgreSQL CPU "
            f"{medians['server_us']:.0f} µs, wall {medians['wall_us']:.0f} µs ({rate:,.0f} msg/s)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
