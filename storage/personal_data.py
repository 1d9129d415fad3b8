"""The record of who read complainants' personal data (storage of ``personal_data_read``)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from workorder_pipeline.schemas.records import PersonalDataRead
from workorder_pipeline.storage.tables import personal_data_read

__all__ = ["PersonalDataRead", "PersonalDataReads"]


class PersonalDataReads:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(self, read: PersonalDataRead) -> None:
        with self._engine.begin() as conn:
            conn.execute(sa.insert(personal_data_read).values(_row(read)))

    def listed(
        self,
        *,
        work_order_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[PersonalDataRead]:
        """The reads matching every filter given, newest first."""
        c = personal_data_read.c
        query = sa.select(personal_data_read)
        if work_order_id is not None:
            query = query.where(c.work_order_id == work_order_id)
        if since is not None:
            query = query.where(c.at >= since)
        if until is not None:
            query = query.where(c.at < until)
        query = query.order_by(c.at.desc(), c.id.desc()).limit(limit)
        with self._engine.connect() as conn:
            return [
                PersonalDataRead(r.at, r.reader, r.role, r.unit, r.work_order_id, r.route, r.dead_letter_id)
                for r in conn.execute(query)
            ]


def _row(read: PersonalDataRead) -> dict[str, object]:
    return {
        "at": read.at,
        "reader": read.reader,
        "role": read.role,
        "unit": read.unit,
        "work_order_id": read.work_order_id,
        "route": read.route,
        "dead_letter_id": read.dead_letter_id,
    }
