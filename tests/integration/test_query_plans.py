"""Every PostgreSQL statement of the worker is planned for its values (storage/database.py).

psycopg prepares a statement on the server after 5 executions, and PostgreSQL may then keep
one generic plan until the table's statistics change. In a benchmark on a fresh database the
intake's lookups (``column = ANY($1)``) and the tick's updates kept the whole-table scans
planned while their tables were nearly empty: 20-30 ms a lookup at 2,500 orders, growing with
every order until autovacuum analyzed the tables. When PostgreSQL picks the generic plan
depends on its cost estimates, which no small test reproduces reliably: this test holds that
no statement is prepared on the server, on the engine the worker uses."""

from __future__ import annotations

import pytest

from workorder_pipeline.storage import intake_queries
from workorder_pipeline.storage.database import create_engine, migrate

pytestmark = [pytest.mark.integration]


def test_no_statement_of_the_worker_keeps_a_plan_on_the_server(postgres_url: str) -> None:
    migrate(postgres_url)
    engine = create_engine(postgres_url)
    keys = [f"vehicle_alarm:js-key-vehicles/PR-{n:08d}" for n in range(50)]
    try:
        with engine.connect() as conn:
            for _ in range(12):  # past psycopg's threshold for preparing a statement
                assert conn.execute(intake_queries.KNOWN_SOURCES, {"keys": keys}).all() == []
            prepared = conn.exec_driver_sql("SELECT count(*) FROM pg_prepared_statements").scalar()
            assert conn.exec_driver_sql("SHOW TimeZone").scalar() == "UTC"
        assert prepared == 0
    finally:
        engine.dispose()
