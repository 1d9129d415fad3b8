"""The fixed mixed batch of tests/unit/test_intake_verdicts.py on both databases: PostgreSQL
(rows by binary COPY, its own lookups) must store exactly what main stored on SQLite when
the verdicts were recorded."""

from __future__ import annotations

import json

import pytest
from sqlalchemy.engine import Engine

from tests.unit.test_intake_verdicts import EXPECTED, _verdicts
from workorder_pipeline.storage.repository import WorkOrderRepository

pytestmark = pytest.mark.integration


def test_the_mixed_batch_gives_the_recorded_verdicts_and_rows_on_either_database(engine: Engine) -> None:
    verdicts = _verdicts(WorkOrderRepository(engine))
    expected = json.loads(EXPECTED.read_text(encoding="utf-8"))
    for part in ("first", "second", "again"):
        assert verdicts[part] == expected[part], part
    for table, rows in expected["rows"].items():
        assert verdicts["rows"][table] == rows, table
