"""Commands the HTTP API put on the commands topic (the worker decides them later)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from workorder_pipeline.storage.tables import api_command


class SentCommands:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(self, command_id: str, work_order_id: str, now: datetime) -> None:
        """Remember a command the broker took (a re-sent one keeps its first record)."""
        with self._engine.begin() as conn:
            insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            conn.execute(
                insert(api_command)
                .values(command_id=command_id, work_order_id=work_order_id, sent_at=now)
                .on_conflict_do_nothing(index_elements=["command_id"])
            )

    def work_order_of(self, command_id: str) -> str | None:
        """The order a command the API sent is about; None for a command it never sent."""
        with self._engine.connect() as conn:
            found: str | None = conn.execute(
                sa.select(api_command.c.work_order_id).where(api_command.c.command_id == command_id)
            ).scalar_one_or_none()
            return found
