"""Database-outage drill: three outages of a private PostgreSQL while events flow into a
running ``wo run`` worker; prints how soon intake resumed after each, and the counts.

    .venv/bin/python bench/outage_drill.py                 # 3 x 30 s outages (~3 min)
    .venv/bin/python bench/outage_drill.py --seconds 10 --rate 100

The outages: ``pg_ctl stop -m fast``, ``-m immediate``, and a SIGKILL of the postmaster
(a crash). Needs root or the ``postgres`` user for the private cluster (never the shared
one on 5432), and the embedded broker binary. Exit code 1 when the worker exited, an event
was lost or made two orders, or intake took 5 s or more to resume.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's tests package

from tests.integration.outage_support import Flow, PrivatePostgres, count_rows, outage
from tests.integration.pipeline_support import read_topic
from tests.integration.test_intake_on_broker import Worker
from workorder_pipeline.wo.embedded_broker import EmbeddedBroker

MODES = ("fast", "immediate", "kill")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each outage")
    parser.add_argument("--rate", type=float, default=40.0, help="events published per second")
    parser.add_argument("--between", type=float, default=10.0, help="seconds of normal flow between outages")
    args = parser.parse_args()
    database = PrivatePostgres()
    tmp = Path(tempfile.mkdtemp(prefix="wo-drill-"))
    try:
        database.start()
        with EmbeddedBroker(log_path=tmp / "broker.log") as broker:
            return drill(broker, database, tmp, args.seconds, args.rate, args.between)
    finally:
        database.close()


def drill(
    broker: EmbeddedBroker, database: PrivatePostgres, tmp: Path, seconds: float, rate: float, between: float
) -> int:
    worker = Worker(broker.bootstrap, database.url, tmp)
    process = worker.start()
    print(f"worker pid {process.pid}, logs in {tmp}")

    def alive() -> bool:
        return process.process.poll() is None

    flow = Flow(worker.bootstrap, worker.alarms_topic, uuid.uuid4().hex[:6], rate_per_s=rate)
    flow.start()
    resumed: dict[str, float] = {}
    try:
        for mode in MODES:
            time.sleep(between)
            print(
                f"outage: pg_ctl stop -m {mode} for {seconds:g} s"
                if mode != "kill"
                else f"outage: SIGKILL of the postmaster for {seconds:g} s",
                flush=True,
            )
            resumed[mode] = outage(database, worker.engine, mode, seconds, alive)
            print(f"  intake resumed {resumed[mode]:.2f} s after the database returned", flush=True)
        time.sleep(between)
    finally:
        published = flow.stop()
    worker.wait_caught_up(process)
    orders = count_rows(worker.engine)
    sources = count_rows(worker.engine, "work_order_source")
    records = read_topic(worker.bootstrap, worker.dispatched_topic, timeout_s=60)
    distinct = {json.loads(r.value)["work_order_id"] for r in records}
    waiting = sum(1 for line in process.output().splitlines() if '"worker_waiting"' in line)
    print(f"events published  {published}")
    print(f"orders stored     {orders} (sources {sources})")
    print(f"dispatched        {len(records)} messages, {len(distinct)} distinct orders")
    print(f"'worker_waiting'  {waiting} log lines (once per task and outage)")
    print(f"worker alive      {alive()}")
    code = process.stop(signal.SIGTERM)
    print(f"SIGTERM           exit {code}")
    worker.close()
    ok = orders == sources == published == len(distinct) and code == 0
    ok = ok and all(value < 5 for value in resumed.values())
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
