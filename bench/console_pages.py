"""The console's pages with 100,000 orders in PostgreSQL: server time of each page, per role.

    .venv/bin/python bench/console_pages.py [--orders 100000] [--repeat 20]

Makes a database of its own on the test server (127.0.0.1:5432, user postgres, as the tests
use), loads the orders (one signal and two history rows each, created over the last 12
months, 40 % open), signs one officer of each role in and asks each page ``--repeat``
times through the app in process (no network, no broker: pages only read). Prints the
median and the slowest time per page, in milliseconds; the issue's bar is 300 ms.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402

from workorder_pipeline.api.app import create_app  # noqa: E402  # noqa: E402
from workorder_pipeline.api.auth import Tokens  # noqa: E402  # noqa: E402
from workorder_pipeline.api.console.session import ConsoleParts  # noqa: E402  # noqa: E402
from workorder_pipeline.schemas.officers import OfficerRole  # noqa: E402  # noqa: E402
from workorder_pipeline.services.figure_snapshots import FigureSnapshots  # noqa: E402
from workorder_pipeline.services.officers import Officers  # noqa: E402  # noqa: E402
from workorder_pipeline.services.policy_set import load_policy_set  # noqa: E402  # noqa: E402
from workorder_pipeline.storage.api_store import ApiStore  # noqa: E402  # noqa: E402
from workorder_pipeline.storage.bulk import insert_rows  # noqa: E402  # noqa: E402
from workorder_pipeline.storage.database import create_engine, migrate  # noqa: E402  # noqa: E402
from workorder_pipeline.storage.figures_read import FigureFacts  # noqa: E402
from workorder_pipeline.storage.officer_store import OfficerStore  # noqa: E402  # noqa: E402
from workorder_pipeline.storage.tables import work_order, work_order_event, work_order_source  # noqa: E402  # noqa: E402

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"
PASSWORD = "bench-password-1"
UNITS = ("squad-1", "squad-2", "squad-3", "squad-4", "squad-5", "command-center")
STATUSES = ("dispatched", "accepted", "in_progress", "feedback_submitted", "returned") + ("closed",) * 8


Row = dict[str, Any]


class NoPublisher:
    def publish(self, command: object) -> None:
        raise RuntimeError("the benchmark only reads")


def _rows(n: int, now: datetime) -> tuple[list[Row], list[Row], list[Row]]:
    orders: list[Row] = []
    sources: list[Row] = []
    events: list[Row] = []
    for i in range(n):
        created = now - timedelta(minutes=(i * 5.256) % (365 * 24 * 60))
        status = STATUSES[i % len(STATUSES)]
        order_id = f"WO-BENCH-{i:08d}"
        plate = f"苏F{i % 100000:05d}"
        orders.append(
            {
                "id": order_id,
                "kind": "complaint" if i % 4 == 0 else "vehicle_alarm",
                "status": status,
                "unit": UNITS[i % len(UNITS)],
                "priority": ("P1", "P2", "P3")[i % 3],
                "route_key": "bench",
                "created_at": created,
                "updated_at": created,
                "due_at": created + timedelta(days=3),
                "dispatched_at": created,
                "plate": plate,
                "enterprise_id": f"9132068{i % 5000:011d}",
                "enterprise_name": f"如皋市第{i % 5000}运输有限公司",
                "region_code": "320682",
                "place": "如皋",
                "summary": f"基准工单 {i}",
                "occurrences": 1,
                "first_seen_at": created,
                "last_seen_at": created,
                "accept_due_at": created + timedelta(hours=8),
                "accepted_at": created + timedelta(hours=1) if status != "dispatched" else None,
                "closed_at": created + timedelta(days=2) if status == "closed" else None,
                "closed_on_time": True if status == "closed" else None,
                "pending_extension_days": 2 if i % 997 == 0 and status == "in_progress" else None,
                "working_days": 3,
            }
        )
        sources.append(
            {
                "source_key": f"vehicle_alarm:BENCH-{i}",
                "work_order_id": order_id,
                "kind": "vehicle_alarm",
                "received_at": created,
                "payload": {"alarm_id": f"BENCH-{i}", "plate": plate},
                "position": None,
            }
        )
        for kind in ("registered", "dispatched"):
            events.append(
                {"work_order_id": order_id, "at": created, "type": kind, "actor": "pipeline", "detail": {}}
            )
    return orders, sources, events


def _load(url: str, n: int, now: datetime) -> None:
    engine = create_engine(url)
    orders, sources, events = _rows(n, now)
    started = time.perf_counter()
    with engine.begin() as conn:
        for table, rows in ((work_order, orders), (work_order_source, sources), (work_order_event, events)):
            for start in range(0, len(rows), 5000):
                insert_rows(conn, table, rows[start : start + 5000])
        conn.exec_driver_sql("ANALYZE")
    took = time.perf_counter() - started
    print(f"loaded {n} orders, {len(sources)} signals, {len(events)} history rows in {took:.1f} s")
    engine.dispose()


def _client(app: object, certificate_no: str) -> TestClient:
    client = TestClient(app, follow_redirects=False)  # type: ignore[arg-type]
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/console/login").text)
    assert token is not None
    answer = client.post(
        "/console/login",
        data={"certificate_no": certificate_no, "password": PASSWORD, "csrf_token": token[1]},
    )
    assert answer.status_code == 303, answer.text[:200]
    return client


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    name = f"wo_bench_console_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        return _run(url, args.orders, args.repeat)
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _run(url: str, n: int, repeat: int) -> int:
    migrate(url)
    now = datetime.now(UTC)
    _load(url, n, now)
    engine = create_engine(url)
    loaded = load_policy_set(ROOT / "policy")
    officers = Officers(OfficerStore(engine))
    for cert, unit, role in (
        ("B-SQ1", "squad-1", OfficerRole.officer),
        ("B-DUTY", "command-center", OfficerRole.duty_officer),
        ("B-SUP", "command-center", OfficerRole.supervisor),
        ("B-ADM", "command-center", OfficerRole.administrator),
    ):
        officers.add(cert, cert, unit, role, PASSWORD, now)
    clock = lambda: datetime.now(UTC)  # noqa: E731
    # As `wo run` has it: one snapshot of the months' figures, read again in the background.
    figures = FigureSnapshots(FigureFacts(engine), loaded.policy.figures.score, clock, 60.0, background=True)
    figures.prepare()
    console = ConsoleParts(officers, loaded.policy, loaded.calendar, clock, figures)
    app = create_app(ApiStore(engine), Tokens([]), NoPublisher(), console=console)
    clients = {who: _client(app, who) for who in ("B-SQ1", "B-DUTY", "B-SUP", "B-ADM")}
    pages = (
        ("B-SQ1", "/console/orders?group=pending"),
        ("B-SQ1", "/console/orders?group=working"),
        ("B-SQ1", "/console/orders?group=all&q=%E8%8B%8FF00006"),
        ("B-SQ1", "/console/orders/WO-BENCH-00000006"),
        ("B-DUTY", "/console/orders?group=all"),
        ("B-DUTY", "/console/orders?group=all&q=%E7%AC%AC4321%E8%BF%90"),
        ("B-DUTY", "/console/center"),
        ("B-SUP", "/console/figures"),
        ("B-SUP", "/console/figures/orders?period=last_month&unit=squad-1&figure=closed&part=denominator"),
        ("B-ADM", "/console/admin/officers"),
    )
    print(f"{'page':<95} {'median ms':>10} {'max ms':>8}")
    worst = 0.0
    for who, page in pages:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            answer = clients[who].get(page)
            times.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, (page, answer.status_code)
        worst = max(worst, statistics.median(times))
        print(f"{who:<7} {page:<87} {statistics.median(times):>10.1f} {max(times):>8.1f}")
    print(f"slowest median {worst:.1f} ms (bar: 300 ms)")
    return 0 if worst < 300 else 1


if __name__ == "__main__":
    raise SystemExit(main())
