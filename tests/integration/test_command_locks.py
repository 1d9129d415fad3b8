"""A batch of commands locks every order it touches at its start, in id order, as intake's
merges and dispatch marks do: no lock cycle between the two (the drills saw deadlocks)."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
import sqlalchemy as sa

from tests.integration.test_repository import alarm_message, make_intake
from workorder_pipeline.storage.command_uow import CommandBatch
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.repository import WorkOrderRepository
from workorder_pipeline.storage.tables import work_order

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def test_a_command_batch_holds_its_orders_locks_from_its_start(postgres_url: str) -> None:
    migrate(postgres_url)
    engine = create_engine(postgres_url)
    intake = make_intake(WorkOrderRepository(engine))
    created = intake.handle([alarm_message("LOCK-1", 1), alarm_message("LOCK-2", 2, offset=1)], NOW).created
    first, second = sorted(order.id for order in created)
    dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with engine.connect() as conn, conn.begin():
        CommandBatch(conn, NOW).lock_orders([second, first])  # the commands' order, not the ids'
        with psycopg.connect(dsn, autocommit=True) as other:
            for order_id in (first, second):
                with pytest.raises(psycopg.errors.LockNotAvailable):
                    other.execute("SELECT id FROM work_order WHERE id = %s FOR UPDATE NOWAIT", (order_id,))
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(work_order)).scalar() == 2
    engine.dispose()
