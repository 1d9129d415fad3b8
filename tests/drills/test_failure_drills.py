"""The failure drills at CI size (bench/failure_drills.py is the full-size script).

A three-node Apache Kafka cluster (replication factor 3, ``min.insync.replicas`` 2), one
``wo run`` worker and a PostgreSQL database take bench/crash_test.py's workload while a
broker fault happens; at the end no order may be lost, duplicated or missing from
``workorders.dispatched``, the worker must still run and the group's lag must be 0.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import require_java_and_maven
from tests.integration.pipeline_support import REPO_ROOT

pytestmark = [pytest.mark.drill, pytest.mark.integration, pytest.mark.postgres]

BENCH = REPO_ROOT / "bench" / "failure_drills.py"
EVENTS = 1_500


def _load_bench() -> ModuleType:
    """bench/ is not a package: load the script as the module ``failure_drills``."""
    spec = importlib.util.spec_from_file_location("failure_drills", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


drills = _load_bench()


@pytest.fixture
def java_and_maven() -> None:
    require_java_and_maven()


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


@pytest.mark.parametrize(
    "drill",
    ["leader-kill", "isr-loss", "rolling-restart"],
    ids=[
        "killed-partition-leader-loses-and-duplicates-nothing",
        "one-in-sync-replica-for-30s-makes-writes-wait-not-vanish",
        "rolling-restart-of-every-broker-loses-and-duplicates-nothing",
    ],
)
def test_broker_faults_under_load_lose_duplicate_and_leave_undispatched_no_order(
    drill: str, java_and_maven: None, postgres_url: str, tmp_path: Path
) -> None:
    config = drills.DrillConfig(
        drill=drills.Drill(drill),
        workers=1,
        events=EVENTS,
        database_url=postgres_url,
        lead_s=5.0,
        tail_s=3.0,
        catch_up_timeout_s=120.0,
        workdir=tmp_path,
    )
    report = drills.run_drill(config, print)
    table = f"{drills.table([report])}\nworker and broker logs: {tmp_path}"
    print(table)
    audit = report.audit
    assert report.fault.healed, table
    assert audit.signal_messages == EVENTS, table
    assert (audit.lost, audit.duplicates, audit.not_dispatched) == (0, 0, 0), table
    assert report.unexpected_exits == [], table
    assert report.lag_at_end == 0, table
    assert report.failures() == [], table
