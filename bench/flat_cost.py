#!/usr/bin/env python
"""Does the work per tick and per batch stay flat as the orders pile up? (issue 22)

For each size (default 10,000 and 1,000,000 orders) a PostgreSQL database is created,
migrated and filled in a few statements (generate_series): a year of vehicle-alarm orders,
the newest ``--open-fraction`` of them still open (5%: 50,000 of 1,000,000), the rest
closed, due 1-7 days after creation, each with its source row and two audit rows, a
quarter of the closed ones with a published reminder. Then, in this process, no Kafka:

- the leader's escalation tick as ``services.publishing.publish_escalations`` drives it
  (``Escalations.fire``, ``pending``, ``published``): the first tick of the process (it
  fires what the seeded orders have due), the first tick of a second process with the same
  rules (it reads only the orders whose next check came), then, each round, ``--ticks`` ticks at that same
  time (nothing new due: the cost of finding what is) and ``--ticks`` ticks 30 s apart
  (firing what came due meanwhile: more at the larger size, which has more open orders);
- the supervision gauges' query (``OrderGauges.open_order_stats``);
- the intake's unit of work (``Intake.handle`` + ``dispatched``) on a batch of 500 alarms
  (bench/benchkit's AlarmStream: their plates and enterprises have closed orders on file).

Every size is seeded first, then measured in ``--rounds`` alternating rounds, so that the
shared machine's drifting load falls on both alike. It prints the medians and the ratio
largest / smallest, and, with ``--explain``, the statements that took most of each phase's
time with PostgreSQL's EXPLAIN (ANALYZE, BUFFERS).

    .venv/bin/python bench/flat_cost.py                          # 10k and 1M (~8 min)
    .venv/bin/python bench/flat_cost.py --sizes 10000,100000 --explain

PostgreSQL: 127.0.0.1:5432, user postgres, trust auth; database wo_flat_bench_<size> (``--database``),
dropped at the end (``--keep`` keeps it). Exit status 0 when the idle tick's and the intake
batch's ratios are within the issue's 20%, 1 otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
for _path in (REPO_ROOT, REPO_ROOT / "bench"):  # run as a script
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import psycopg  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from benchkit.common import POSTGRES_ADMIN_DSN, AlarmStream  # noqa: E402
from psycopg import sql  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402

from workorder_pipeline.config.settings import Topics  # noqa: E402
from workorder_pipeline.processors.compiled_policy import compile_policy  # noqa: E402
from workorder_pipeline.services.calendar_files import load_calendar  # noqa: E402
from workorder_pipeline.services.escalations import Escalations  # noqa: E402
from workorder_pipeline.services.intake import InboundMessage, Intake  # noqa: E402
from workorder_pipeline.services.policy_files import ReferenceFiles, load_policy  # noqa: E402
from workorder_pipeline.storage.database import create_engine, migrate  # noqa: E402
from workorder_pipeline.storage.order_gauges import OrderGauges  # noqa: E402
from workorder_pipeline.storage.repository import WorkOrderRepository  # noqa: E402

POLICY_DIR = REPO_ROOT / "policy"
BATCH = 500
TICK = timedelta(seconds=30)
TARGET_RATIO = 1.2

#: The filler, all in the database. Order g of :n was created (365 days) * (:n - g) / :n ago;
#: the newest :open are open (statuses mixed as g % 20 says), the rest closed. Plates are
#: those AlarmStream uses (苏A00000...), so a new alarm's vehicle and enterprise have history.
_ORDERS = """
WITH g AS (
  SELECT i, :now - interval '365 days' * (:n - i) / :n AS created,
         i > :n - :open AS open, i % 20 AS mix,
         '苏' || substr('ABCDEFGHJKLMN', (i % 200000) / 100000 + 1, 1) || lpad((i % 100000)::text, 5, '0')
           AS plate,
         (ARRAY['fatigue_driving','route_deviation','overspeed','offline'])[i % 4 + 1] AS alarm
  FROM generate_series(1, :n) AS i)
INSERT INTO work_order (id, kind, status, unit, priority, route_key, created_at, updated_at, due_at,
  dispatched_at, plate, enterprise_id, enterprise_name, region_code, place, summary, occurrences,
  first_seen_at, last_seen_at, dedupe_key, working_days, accepted_at, closed_at, closed_on_time,
  returned_at, accept_due_at, copied_to, related_ids, dedupe_slot)
SELECT 'WO-VA-BENCH' || lpad(i::text, 9, '0'), 'vehicle_alarm',
  CASE WHEN NOT open THEN 'closed' WHEN mix < 4 THEN 'dispatched' WHEN mix < 8 THEN 'accepted'
       WHEN mix < 16 THEN 'in_progress' WHEN mix < 19 THEN 'feedback_submitted' ELSE 'returned' END,
  'squad-' || (1 + i % 3), 'P' || (1 + i % 3), 'alarm.freight', created, created,
  created + interval '1 hour' * (24 + (i::bigint * 7919) % 144), created, plate,
  '913206' || lpad(((i % 200000) / 20)::text, 12, '0'), '如皋市雉水客运有限公司', '320682', 'G15',
  alarm || ' level 2, 95 s, on G15', 1, created, created, 'vehicle_alarm|' || plate || '|' || alarm, 3,
  CASE WHEN open AND mix < 4 THEN NULL ELSE created + interval '1 hour' END,
  CASE WHEN open THEN NULL ELSE created + interval '20 hours' END,
  CASE WHEN open THEN NULL ELSE true END,
  CASE WHEN open AND mix = 19 THEN :now - interval '1 hour' * (i % 48) END,
  created + interval '4 hours', '', '',
  CASE WHEN open THEN 'vehicle_alarm|' || plate || '|' || alarm END
FROM g
"""
_SOURCES = """
INSERT INTO work_order_source (source_key, work_order_id, kind, received_at, payload)
SELECT 'vehicle_alarm:js-key-vehicles/hist-' || substr(id, 12), id, kind, created_at, '{"bench": true}'
FROM work_order
"""
_EVENTS = """
INSERT INTO work_order_event (work_order_id, at, type, actor, detail)
SELECT id, created_at, t, 'pipeline', '{}' FROM work_order, unnest(ARRAY['registered','dispatched']) AS t
ORDER BY id
"""
_ESCALATIONS = """
INSERT INTO escalation (work_order_id, level, due_at, unit, fired_at, published_at)
SELECT id, 'reminder', due_at, unit, due_at - interval '1 day', due_at - interval '1 day'
FROM work_order WHERE status = 'closed' AND substr(id, 12)::int % 4 = 0
"""
#: What the leader has fired already for the open orders (the catch-up tick fires the rest:
#: the cards' working days are the calendar's, here approximated by days).
_FIRED = """
INSERT INTO escalation (work_order_id, level, due_at, unit, fired_at, published_at)
SELECT id, level, key, unit, :now, :now FROM work_order, LATERAL (VALUES
  ('reminder', due_at, created_at + (due_at - created_at) * 0.75),
  ('overdue', due_at, due_at),
  ('leadership', due_at, due_at + interval '24 hours'),
  ('yellow_card', due_at, due_at - interval '2 days'),
  ('red_card', due_at, due_at + interval '2 days'),
  ('accept_reminder', accept_due_at,
   CASE WHEN status = 'dispatched' THEN accept_due_at - interval '30 minutes' END),
  ('accept_overdue', accept_due_at, CASE WHEN status = 'dispatched' THEN accept_due_at END)
) AS due(level, key, at)
WHERE status NOT IN ('closed', 'returned') AND at <= :now
"""


@dataclass
class Phase:
    """Per statement (its SQL text): how often it ran, its total seconds, one set of parameters."""

    statements: dict[str, list[Any]] = field(default_factory=dict)

    def record(self, statement: str, params: Any, seconds: float, many: bool) -> None:
        entry = self.statements.setdefault(statement, [0, 0.0, None])
        entry[0] += 1
        entry[1] += seconds
        if not many and entry[2] is None:  # the first call's: a keyset's last read finds nothing
            entry[2] = params

    def slowest(self, count: int) -> list[tuple[str, int, float, Any]]:
        ranked = sorted(self.statements.items(), key=lambda item: -item[1][1])
        return [(text, n, total, params) for text, (n, total, params) in ranked[:count]]


class Recorder:
    """Times every statement the engine runs, by phase."""

    def __init__(self, engine: Engine) -> None:
        self.phases: dict[str, Phase] = {}
        self.current: Phase | None = None
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.current = self.phases.setdefault(name, Phase())
        try:
            yield
        finally:
            self.current = None

    def _before(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        conn.info["flat_started"] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if self.current is not None:
            seconds = time.perf_counter() - conn.info.pop("flat_started")
            self.current.record(statement, params, seconds, many)


def seed(url: str, n: int, open_count: int, now: datetime) -> float:
    """Fill the migrated database; returns the seconds it took."""
    started = time.monotonic()
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(_ORDERS), {"n": n, "open": open_count, "now": now})
            for statement in (_SOURCES, _EVENTS, _ESCALATIONS):
                conn.execute(sa.text(statement))
            conn.execute(sa.text(_FIRED), {"now": now})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))
            # The load's dirty pages written now, not by a checkpoint during the measurements.
            conn.execute(sa.text("CHECKPOINT"))
    finally:
        engine.dispose()
    return time.monotonic() - started


def timed(runs: int, action: Callable[[int], Any]) -> list[float]:
    """Milliseconds of each of ``runs`` calls of ``action(run)``."""
    times = []
    for run in range(runs):
        started = time.perf_counter()
        action(run)
        times.append((time.perf_counter() - started) * 1000)
    return times


@dataclass
class Figures:
    catch_up_ms: float = 0.0
    restart_ms: float = 0.0
    fired: int = 0
    idle_ms: list[float] = field(default_factory=list)
    tick_ms: list[float] = field(default_factory=list)
    tick_fired: int = 0
    gauges_ms: list[float] = field(default_factory=list)
    intake_ms: list[float] = field(default_factory=list)


class Subject:
    """One size's database with the leader's and the intake's services on it."""

    def __init__(self, size: int, url: str, now: datetime) -> None:
        self.size, self.now = size, now
        self.engine = create_engine(url)
        self.recorder = Recorder(self.engine)
        policy = load_policy(POLICY_DIR)
        calendar = load_calendar(POLICY_DIR)
        repository = WorkOrderRepository(self.engine)
        self.escalations = Escalations(repository, policy.deadlines, calendar)
        # A second process with the same rules (services/escalations.clock_rules_digest).
        self.restarted = Escalations(repository, policy.deadlines, calendar)
        self.gauges = OrderGauges(self.engine)
        reference = ReferenceFiles(POLICY_DIR)
        self.topics = Topics()
        self.intake = Intake(
            compile_policy(policy),
            repository,
            self.topics.inbound(),
            reference=lambda: reference.current,
            calendar=calendar,
        )
        self.stream = AlarmStream(f"flat{size}")
        self.offset = 0
        self.figures = Figures()

    def tick(self, at: datetime) -> int:
        """What services.publishing.publish_escalations asks of the database each tick."""
        fired = self.escalations.fire(at)
        self.escalations.published(self.escalations.pending(), at)
        return fired

    def catch_up(self) -> None:
        with self.recorder.phase("catch-up tick"):
            started = time.perf_counter()
            self.figures.fired = self.tick(self.now)
            self.figures.catch_up_ms = (time.perf_counter() - started) * 1000
        with self.recorder.phase("restart tick"):
            started = time.perf_counter()
            self.restarted.fire(self.now)
            self.figures.restart_ms = (time.perf_counter() - started) * 1000
        self.intake_batch()  # warm-up

    def intake_batch(self) -> None:
        messages = [
            InboundMessage(self.topics.vehicle_alarms, 0, self.offset + i, m.key, m.value)
            for i, m in enumerate(self.stream.take(BATCH))
        ]
        self.offset += BATCH
        now = datetime.now(UTC)
        self.intake.dispatched(self.intake.handle(messages, now).to_dispatch, now)

    def round(self, number: int, ticks: int) -> None:
        """Ticks with nothing new due (at the catch-up's time), ticks 30 s apart after it,
        gauge queries, one intake batch."""
        figures = self.figures
        with self.recorder.phase("escalation tick, nothing new due"):
            figures.idle_ms += timed(ticks, lambda _k: self.tick(self.now))
        with self.recorder.phase("escalation tick, 30 s apart"):
            for k in range(ticks):
                started = time.perf_counter()
                figures.tick_fired += self.tick(self.now + TICK * (number * ticks + k + 1))
                figures.tick_ms.append((time.perf_counter() - started) * 1000)
        with self.recorder.phase("gauges"):
            figures.gauges_ms += timed(ticks, lambda _k: self.gauges.open_order_stats(self.now))
        with self.recorder.phase("intake batch"):
            figures.intake_ms += timed(1, lambda _k: self.intake_batch())


def explain(engine: Engine, recorder: Recorder, top: int) -> None:
    for name, phase in recorder.phases.items():
        print(f"\n--- {name}: the {top} statements that took longest in all ---")
        for text, count, total, params in phase.slowest(top):
            print(f"\n{count} x, {total * 1000:.1f} ms in all: {' '.join(text.split())[:400]}")
            if params is None or not text.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            raw = engine.raw_connection()
            try:
                cursor = raw.cursor()
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + text, params)
                print("\n".join("    " + row[0] for row in cursor.fetchall()))
            finally:
                raw.rollback()
                raw.close()


@contextmanager
def bench_database(prefix: str, size: int, keep: bool) -> Iterator[str]:
    name = f"{prefix}_{size}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        if not keep:
            with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def run(sizes: Sequence[int], args: argparse.Namespace) -> list[Figures]:
    """Seed every size, then measure them in alternating rounds: the machine's load drifts
    (it is shared), and each size sees the same drift."""
    with ExitStack() as stack:
        subjects = []
        for size in sizes:
            url = stack.enter_context(bench_database(args.database, size, args.keep))
            migrate(url)
            open_count = max(1, round(size * args.open_fraction))
            now = datetime.now(UTC)
            print(f"{size:,} orders ({open_count:,} open): seeding...", flush=True)
            print(f"  seeded in {seed(url, size, open_count, now):.0f} s", flush=True)
            subject = Subject(size, url, now)
            stack.callback(subject.engine.dispose)
            subjects.append(subject)
        for subject in subjects:
            subject.catch_up()
        for number in range(args.rounds):
            for subject in subjects if number % 2 == 0 else reversed(subjects):
                subject.round(number, args.ticks)
        if args.explain:
            for subject in subjects:
                print(f"\n=== {subject.size:,} orders ===")
                explain(subject.engine, subject.recorder, args.top)
        return [subject.figures for subject in subjects]


def report(sizes: Sequence[int], results: list[Figures]) -> bool:
    rows: list[tuple[str, Callable[[Figures], float]]] = [
        ("escalation tick, nothing new due (ms, median)", lambda f: statistics.median(f.idle_ms)),
        ("escalation tick, 30 s apart (ms, median)", lambda f: statistics.median(f.tick_ms)),
        ("  escalations those ticks fired, in all", lambda f: f.tick_fired),
        ("supervision gauges query (ms, median)", lambda f: statistics.median(f.gauges_ms)),
        ("intake batch of 500 alarms (ms, median)", lambda f: statistics.median(f.intake_ms)),
        ("first tick: every open order (ms, once)", lambda f: f.catch_up_ms),
        ("first tick of a restart, same rules (ms, once)", lambda f: f.restart_ms),
        ("  escalations it fired", lambda f: f.fired),
    ]
    head = " | ".join(f"{size:,} orders" for size in sizes)
    print(f"\n| measure | {head} | ratio last / first |")
    print("|---" * (len(sizes) + 2) + "|")
    flat = True
    for label, value in rows:
        values = [value(figures) for figures in results]
        ratio = values[-1] / values[0] if values[0] else float("inf")
        if label.startswith(("escalation tick, nothing", "intake")) and ratio > TARGET_RATIO:
            flat = False
        cells = " | ".join(f"{v:,.1f}" if isinstance(v, float) else f"{v:,}" for v in values)
        print(f"| {label} | {cells} | {ratio:.2f} |")
    return flat


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10000,1000000", help="orders in the database, comma-separated")
    parser.add_argument("--open-fraction", type=float, default=0.05, help="share of the orders still open")
    parser.add_argument("--rounds", type=int, default=9, help="rounds, sizes in turn; a batch each")
    parser.add_argument("--ticks", type=int, default=3, help="ticks of each kind, gauge reads, per round")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the slowest statements")
    parser.add_argument("--top", type=int, default=3, help="statements per phase with --explain")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument("--database", default="wo_flat_bench", help="databases' name: this, _, the size")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    results = run(sizes, args)
    return 0 if report(sizes, results) else 1


if __name__ == "__main__":
    sys.exit(main())
