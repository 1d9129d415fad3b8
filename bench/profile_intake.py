#!/usr/bin/env python
"""Where an intake batch's time goes: the worker's intake service (``Intake.handle`` and
``dispatched``, as bench/benchmark.py's "Intake.handle alone" row) on the benchmark's vehicle
alarms, in this process, no Kafka, under cProfile; every SQL statement timed on the client
(round trip: the server's work and the wire), grouped by statement.

    .venv/bin/python bench/profile_intake.py --postgres --messages 20000 --batch 500
    .venv/bin/python bench/profile_intake.py --sqlite --top 40

pg_stat_statements needs a server restart (shared_preload_libraries), so the database's
side is read here as each statement's round-trip time, which includes the server's work.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import resource
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH = REPO_ROOT / "bench"
for _path in (REPO_ROOT, BENCH):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import sqlalchemy as sa  # noqa: E402
from benchkit.common import AlarmStream  # noqa: E402
from benchkit.processes import database  # noqa: E402

from workorder_pipeline.config.settings import Topics  # noqa: E402
from workorder_pipeline.processors.compiled_policy import compile_policy  # noqa: E402
from workorder_pipeline.schemas.policy import Policy  # noqa: E402
from workorder_pipeline.services.calendar_files import load_calendar  # noqa: E402
from workorder_pipeline.services.intake import InboundMessage, Intake  # noqa: E402
from workorder_pipeline.services.policy_files import ReferenceFiles, load_policy  # noqa: E402
from workorder_pipeline.storage import bulk  # noqa: E402
from workorder_pipeline.storage.database import create_engine, migrate  # noqa: E402
from workorder_pipeline.storage.repository import WorkOrderRepository  # noqa: E402


class StatementClock:
    """Round-trip time and count of each statement (its first words), per engine; the COPYs
    of storage/bulk.py (which SQLAlchemy does not see) as ``COPY <table>``."""

    def __init__(self, engine: sa.Engine) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)
        copy_rows = bulk._copy_rows

        def timed_copy(conn: Any, table: sa.Table, *args: Any) -> None:
            started = time.perf_counter()
            try:
                copy_rows(conn, table, *args)
            finally:
                self.seconds[f"COPY {table.name}"] += time.perf_counter() - started
                self.counts[f"COPY {table.name}"] += 1

        bulk._copy_rows = timed_copy  # type: ignore[assignment]

    def _before(self, conn: Any, _cursor: Any, _statement: str, *_args: Any) -> None:
        conn.info["wo_started"] = time.perf_counter()

    def _after(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        key = " ".join(statement.split())[:90]
        self.seconds[key] += time.perf_counter() - conn.info.pop("wo_started")
        self.counts[key] += 1


def bench_intake(engine: sa.Engine) -> tuple[Intake, WorkOrderRepository, Policy]:
    """The worker's intake service on ``engine``, with the bundled policy and calendar."""
    policy_dir = REPO_ROOT / "policy"
    reference = ReferenceFiles(policy_dir)
    policy = load_policy(policy_dir)
    repository = WorkOrderRepository(engine)
    intake = Intake(
        compile_policy(policy),
        repository,
        Topics().inbound(),
        reference=lambda: reference.current,
        calendar=load_calendar(policy_dir),
    )
    return intake, repository, policy


def alarm_backlog(messages: int) -> list[InboundMessage]:
    """The benchmark's vehicle alarms, as the intake consumer hands them over."""
    topic = Topics().vehicle_alarms
    return [
        InboundMessage(topic, 0, offset, m.key, m.value)
        for offset, m in enumerate(AlarmStream("PR").take(messages))
    ]


def run(
    url: str, messages: int, batch: int, top: int, save: str | None = None, cpu_clock: bool = False
) -> None:
    migrate(url)
    engine = create_engine(url)
    intake, _, _ = bench_intake(engine)
    backlog = alarm_backlog(messages)
    clock = StatementClock(engine)
    # The thread's CPU clock leaves out the time spent waiting on the database.
    profile = cProfile.Profile(time.thread_time) if cpu_clock else cProfile.Profile()
    cpu0, started = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    profile.enable()
    for start in range(0, len(backlog), batch):
        now = datetime.now(UTC)
        result = intake.handle(backlog[start : start + batch], now)
        intake.dispatched(result.to_dispatch, now)
    profile.disable()
    elapsed, cpu1 = time.monotonic() - started, resource.getrusage(resource.RUSAGE_SELF)
    engine.dispose()
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    batches = -(-len(backlog) // batch)
    sql_s = sum(clock.seconds.values())
    print(f"{len(backlog):,} messages in {batches} batches of {batch}: {len(backlog) / elapsed:,.0f} msg/s")
    print(f"  (under cProfile) client CPU {cpu / len(backlog) * 1e6:,.0f} µs/msg")
    print(
        f"  SQL round trips {sum(clock.counts.values()) / batches:.1f} per batch, "
        f"{sql_s / len(backlog) * 1e6:,.0f} µs/msg wall ({sql_s / elapsed:.0%} of the wall time)"
    )
    print("\nstatements by round-trip time (µs per message, count per batch):")
    for key, seconds in sorted(clock.seconds.items(), key=lambda kv: -kv[1])[:15]:
        per_msg = seconds / len(backlog) * 1e6
        print(f"  {per_msg:7.1f} µs  {clock.counts[key] / batches:5.1f}×  {key}")
    print()
    stats = pstats.Stats(profile)
    if save:
        stats.dump_stats(save)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--postgres", action="store_const", const="postgres", dest="kind", default="postgres")
    kind.add_argument("--sqlite", action="store_const", const="sqlite", dest="kind")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--top", type=int, default=30, help="functions listed by own and by cumulative time")
    parser.add_argument("--cpu", action="store_true", help="time by this thread's CPU, not the wall")
    parser.add_argument("--save", help="also write the profile to this file (pstats, for callers)")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="wo-profile-") as workdir,
        database(args.kind, Path(workdir)) as url,
    ):
        run(url, args.messages, args.batch, args.top, args.save, args.cpu)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
