"""A time written by a batch insert on SQLite is the very text SQLAlchemy's column type writes
(the batch converts it itself): the same times then compare alike in queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from workorder_pipeline.storage.bulk import sqlite_utc_text
from workorder_pipeline.storage.tables import UtcDateTime

_SQLITE = sa.create_engine("sqlite://").dialect
_SQLALCHEMY = UtcDateTime().dialect_impl(_SQLITE).bind_processor(_SQLITE)

TIMES = [
    datetime(2026, 11, 22, 9, 30, tzinfo=UTC),  # a whole second
    datetime(2026, 11, 22, 9, 30, 0, 1, tzinfo=UTC),
    datetime(2026, 11, 22, 9, 30, 59, 999999, tzinfo=timezone(timedelta(hours=8))),
    datetime(2026, 1, 1, 0, 0, tzinfo=ZoneInfo("Asia/Shanghai")),  # the day before in UTC
    datetime(2026, 3, 29, 2, 30, tzinfo=ZoneInfo("Europe/Berlin")),  # a gap of summer time
    datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Berlin")),  # the repeated hour
    datetime(2026, 6, 1, tzinfo=timezone(timedelta(hours=-9, minutes=-30, seconds=-7))),
    datetime(1, 1, 1, 12, tzinfo=UTC),  # years before 1000 keep four digits
    datetime(999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-1))),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]


@pytest.mark.parametrize("at", TIMES, ids=str)
def test_a_time_is_written_as_the_text_sqlalchemy_writes(at: datetime) -> None:
    assert _SQLALCHEMY is not None
    assert sqlite_utc_text(at) == _SQLALCHEMY(at)


def test_a_naive_time_is_refused_as_sqlalchemy_refuses_it() -> None:
    assert _SQLALCHEMY is not None
    with pytest.raises(ValueError, match="naive datetime"):
        _SQLALCHEMY(datetime(2026, 11, 22))
    with pytest.raises(ValueError, match="naive datetime"):
        sqlite_utc_text(datetime(2026, 11, 22))
