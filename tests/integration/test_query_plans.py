"""Every PostgreSQL session plans each statement for its values (storage/database.py).

psycopg prepares a statement on the server after 5 executions, and PostgreSQL may then keep
one generic plan until the table's statistics change. In a benchmark on a fresh database the
intake's lookups (``column = ANY($1)``) and the tick's updates kept the whole-table scans
planned while their tables were nearly empty: 20-30 ms a lookup at 2,500 orders, growing with
every order until autovacuum analyzed the tables. When PostgreSQL picks the generic plan
depends on its cost estimates, which no small test reproduces reliably: this test holds the
setting that rules it out, on the engine the worker uses."""

from __future__ import annotations

import pytest

from workorder_pipeline.storage.database import create_engine, migrate

pytestmark = [pytest.mark.integration]


def test_every_session_of_the_worker_plans_each_statement_for_its_values(postgres_url: str) -> None:
    migrate(postgres_url)
    engine = create_engine(postgres_url)
    try:
        for _ in range(2):  # a new connection, then one back from the pool
            with engine.connect() as conn:
                assert conn.exec_driver_sql("SHOW plan_cache_mode").scalar() == "force_custom_plan"
                assert conn.exec_driver_sql("SHOW TimeZone").scalar() == "UTC"
    finally:
        engine.dispose()
