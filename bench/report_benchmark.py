"""The monthly report over a month of 200,000 orders in PostgreSQL: prints how long the
report's queries and each format took.

    .venv/bin/python bench/report_benchmark.py                  # 200,000 orders (+50,000 the month before)
    .venv/bin/python bench/report_benchmark.py --orders 20000

Uses the PostgreSQL on 127.0.0.1:5432 (WO_TEST_POSTGRES_PORT) like the tests: a database of
its own, dropped at the end. Writing the generated month takes a few minutes; only the report
is timed. Exit code 1 when the report (queries and the three formats) took a minute or more.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests package

from tests.conftest import POSTGRES_ADMIN_DSN, POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER
from tests.report_month import china_month, generate, write
from workorder_pipeline.processors.figures import Period
from workorder_pipeline.schemas.figures import ScoreWeights
from workorder_pipeline.services.policy_files import load_policy
from workorder_pipeline.services.report import figures_from, monthly_report, previous_month
from workorder_pipeline.services.report_formats.documents import ReportFormat, render
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.figures_read import FigureFacts
from workorder_pipeline.storage.report_store import ReportStore

LIMIT_S = 60.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--out", type=Path, default=Path("var/report-benchmark"))
    args = parser.parse_args()
    name = f"wo_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"postgresql+psycopg://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    try:
        return _run(url, args.orders, args.out)
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _run(url: str, orders: int, out: Path) -> int:
    migrate(url)
    engine = create_engine(url)
    began = time.perf_counter()
    write(engine, generate(*china_month(2026, 10), orders // 4, seed=1, prefix="O"))
    write(engine, generate(*china_month(2026, 11), orders, seed=2, prefix="N"))
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    print(
        f"generated {orders:,} orders in 2026-11 (+{orders // 4:,} in 2026-10) "
        f"in {time.perf_counter() - began:.0f} s"
    )
    now = datetime(2026, 12, 2, tzinfo=UTC)
    november = Period.month(2026, 11)
    began = time.perf_counter()
    figures = figures_from(FigureFacts(engine), ScoreWeights())
    computed = {period.label: figures(period, now) for period in (november, previous_month(november))}
    figured = time.perf_counter() - began
    print(f"figures of 2026-11 and 2026-10 (services/figures.py): {figured:.1f} s")
    began = time.perf_counter()
    report = monthly_report(
        ReportStore(engine),
        november,
        now,
        lambda period, _now: computed[period.label],
        unit_names=load_policy(Path(__file__).resolve().parents[1] / "policy").units.names(),
    )
    queried = time.perf_counter() - began
    print(f"the report's own queries: {queried:.1f} s")
    out.mkdir(parents=True, exist_ok=True)
    total = figured + queried
    for fmt in ReportFormat:
        began = time.perf_counter()
        (out / f"report-2026-11.{fmt.value}").write_bytes(render(report, fmt))
        spent = time.perf_counter() - began
        total += spent
        print(f"{fmt.value}: {spent:.1f} s")
    print(f"total: {total:.1f} s (limit {LIMIT_S:.0f} s); files in {out}")
    engine.dispose()
    return 0 if total < LIMIT_S else 1


if __name__ == "__main__":
    sys.exit(main())
