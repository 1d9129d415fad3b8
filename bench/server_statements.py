#!/usr/bin/env python
"""PostgreSQL's own time per statement of the intake (and of the leader's tick), read from the
server's log: the intake runs as bench/profile_intake.py runs it (no Kafka, no profiler) in a
database of its own, which logs every statement's duration (``log_min_duration_statement``
set on that database only); with ``--plans MS``, auto_explain also logs the plan of each
statement slower than MS, and the plan nodes that scan whole tables are counted.

    .venv/bin/python bench/server_statements.py --batch 50 --messages 5000 --plans 5
    .venv/bin/python bench/server_statements.py --tick-every 10      # the tick's statements too

The server's log must be readable here (Debian: /var/log/postgresql/postgresql-15-main.log).
Found with it, 2026-12-06: generic plans that scanned whole tables (the intake's lookups),
and the tick's one UPDATE per order (README, "Performance").
"""

from __future__ import annotations

import argparse
import re
import sys
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH = REPO_ROOT / "bench"
for _path in (REPO_ROOT, BENCH):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import psycopg  # noqa: E402
from benchkit.common import POSTGRES_ADMIN_DSN  # noqa: E402
from profile_intake import alarm_backlog, bench_intake  # noqa: E402
from psycopg import sql  # noqa: E402

from workorder_pipeline.services.escalations import Escalations  # noqa: E402
from workorder_pipeline.storage.database import create_engine, migrate  # noqa: E402

SERVER_LOG = Path("/var/log/postgresql/postgresql-15-main.log")
_DURATION = re.compile(r"duration: ([0-9.]+) ms  (statement|execute|parse|bind)[^:]*: (.*)")


def run(database: str, messages: int, batch: int, tick_every: int) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}"
    migrate(url)
    engine = create_engine(url)
    intake, repository, policy = bench_intake(engine)
    escalations = Escalations(repository, policy.deadlines, intake.calendar)
    backlog = alarm_backlog(messages)
    started = datetime.now(UTC)
    for number, start in enumerate(range(0, len(backlog), batch), start=1):
        now = started + timedelta(seconds=number)
        result = intake.handle(backlog[start : start + batch], now)
        intake.dispatched(result.to_dispatch, now)
        if tick_every and number % tick_every == 0:
            escalations.fire(now)
    engine.dispose()


def report(lines: list[str], database: str, messages: int, batches: int) -> None:
    seconds: dict[str, float] = defaultdict(float)
    planning: dict[str, float] = defaultdict(float)
    counts: Counter[str] = Counter()
    scans: Counter[str] = Counter()
    for number, line in enumerate(lines):
        if f"@{database} " in line and (found := _DURATION.search(line)):
            text = found.group(3).strip() or lines[min(number + 1, len(lines) - 1)]
            key = " ".join(text.split())[:80]
            seconds[key] += float(found.group(1)) / 1000  # parse and bind (planning) included
            planning[key] += float(found.group(1)) / 1000 if found.group(2) == "bind" else 0.0
            counts[key] += found.group(2) in ("statement", "execute")
        elif (scan := re.search(r"Seq Scan on (\w+)", line)) is not None:
            scans[scan.group(1)] += 1
    total = sum(seconds.values())
    print(f"server time {total:.2f} s in all, {total / messages * 1e6:,.0f} µs per message")
    print("statements by server time (µs per message; of it binding, where plans are made;")
    print("executions per batch):")
    for key, spent in sorted(seconds.items(), key=lambda kv: -kv[1])[:15]:
        per_message, binding = spent / messages * 1e6, planning[key] / messages * 1e6
        print(f"  {per_message:7.1f} µs {binding:6.1f} µs {counts[key] / batches:5.1f}×  {key}")
    if scans:
        print("whole-table scans in the plans logged:", ", ".join(f"{t} {n}" for t, n in scans.most_common()))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--tick-every", type=int, default=0, help="run the leader's tick every N batches")
    parser.add_argument("--plans", type=float, help="log the plans of statements slower than this (ms)")
    parser.add_argument("--server-log", type=Path, default=SERVER_LOG)
    args = parser.parse_args()
    database = f"wo_statements_{uuid.uuid4().hex[:10]}"
    settings = {"log_min_duration_statement": "0"}
    if args.plans is not None:
        settings |= {
            "session_preload_libraries": "auto_explain",
            "auto_explain.log_min_duration": str(args.plans),
        }
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        for name, value in settings.items():
            admin.execute(
                sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                    sql.Identifier(database), sql.SQL(name), sql.Literal(value)
                )
            )
    offset = args.server_log.stat().st_size
    try:
        run(database, args.messages, args.batch, args.tick_every)
        with args.server_log.open(encoding="utf-8", errors="replace") as log:
            log.seek(offset)
            lines = log.read().splitlines()
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))
    report(lines, database, args.messages, -(-args.messages // args.batch))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
