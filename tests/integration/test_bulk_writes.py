"""The intake's batch writes and list lookups on real SQLite and PostgreSQL: values come
back as written, whatever characters they hold, and lists of any length match exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from workorder_pipeline.storage.bulk import insert_rows
from workorder_pipeline.storage.one_of import one_of
from workorder_pipeline.storage.tables import suppressed_signal

pytestmark = pytest.mark.integration

CST = timezone(timedelta(hours=8))
#: Characters a text array's quoting must survive: quotes, braces, commas, backslashes, NUL-free
#: control characters, Chinese text, and an empty string.
AWKWARD = ["plain", 'with "quotes"', "{braces},commas", "back\\slash", "tab\there\nline", "苏F21367", ""]


def suppressed_row(n: int, text: str) -> dict[str, object]:
    return {
        "source_key": f"vehicle_alarm:{text}/{n}",
        "kind": "vehicle_alarm",
        "reason": "threshold",
        "rule_key": "minor-overspeed",
        "detail": text,
        "unit": "squad-1",
        "route_key": "root",
        "occurred_at": datetime(2026, 11, 22, 9, 30, n % 60, 123456, tzinfo=CST),
        "received_at": datetime(2026, 11, 22, 1, 31, tzinfo=UTC),
        "violation_key": None if n % 2 else text,
        "payload": {"text": text, "n": n, "nested": [text, None, True, 1.5], "空": {"a": text}},
        "region_code": None if n % 3 else "320682",
    }


def test_a_batch_insert_keeps_every_value_as_written(engine: Engine) -> None:
    written = [suppressed_row(n, text) for n, text in enumerate(AWKWARD * 3)]
    with engine.begin() as conn:
        insert_rows(conn, suppressed_signal, written)
    with engine.connect() as conn:
        read = [dict(row) for row in conn.execute(sa.select(suppressed_signal)).mappings()]
    assert sorted(read, key=lambda row: str(row["source_key"])) == sorted(
        written, key=lambda row: str(row["source_key"])
    )
    assert {row["occurred_at"].tzinfo for row in read} == {UTC}


def test_a_batch_written_time_on_a_whole_second_is_found_by_a_range_from_that_second(engine: Engine) -> None:
    # A replay "from 09:00" must see what was received at 09:00:00 exactly (SQLite compares text).
    whole_second = datetime(2026, 11, 22, 1, 31, tzinfo=UTC)
    with engine.begin() as conn:
        insert_rows(conn, suppressed_signal, [suppressed_row(1, "a")])
        found = conn.execute(
            sa.select(suppressed_signal.c.source_key).where(
                suppressed_signal.c.received_at >= whole_second,
                suppressed_signal.c.received_at <= whole_second,
            )
        ).scalars()
        assert list(found) == ["vehicle_alarm:a/1"]


def test_a_batch_insert_as_a_connection_s_first_statement_is_committed_by_its_commit(engine: Engine) -> None:
    with engine.connect() as conn:
        insert_rows(conn, suppressed_signal, [suppressed_row(1, "a")])
        conn.commit()
    with engine.connect() as conn:
        keys = conn.execute(sa.select(suppressed_signal.c.source_key)).scalars().all()
    assert keys == ["vehicle_alarm:a/1"]


def test_a_batch_insert_of_nothing_writes_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        insert_rows(conn, suppressed_signal, [])
        assert conn.execute(sa.select(sa.func.count()).select_from(suppressed_signal)).scalar_one() == 0


def test_a_batch_insert_refuses_a_naive_time_and_writes_nothing(engine: Engine) -> None:
    rows = [suppressed_row(1, "a"), {**suppressed_row(2, "b"), "received_at": datetime(2026, 11, 22)}]
    with pytest.raises(ValueError, match="naive datetime"), engine.begin() as conn:
        insert_rows(conn, suppressed_signal, rows)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(suppressed_signal)).scalar_one() == 0


def test_a_batch_insert_of_a_recorded_key_fails_as_a_whole(engine: Engine) -> None:
    with engine.begin() as conn:
        insert_rows(conn, suppressed_signal, [suppressed_row(1, "a")])
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        insert_rows(conn, suppressed_signal, [suppressed_row(2, "b"), suppressed_row(1, "a")])
    with engine.connect() as conn:
        keys = conn.execute(sa.select(suppressed_signal.c.source_key)).scalars().all()
    assert keys == ["vehicle_alarm:a/1"]


@pytest.mark.parametrize("wanted_count", [1, 7, 1200])
def test_a_list_lookup_finds_exactly_the_listed_values(engine: Engine, wanted_count: int) -> None:
    stored = [suppressed_row(n, text) for n, text in enumerate(AWKWARD * 200)]
    with engine.begin() as conn:
        insert_rows(conn, suppressed_signal, stored)
    keys = [str(row["source_key"]) for row in stored]
    wanted = [*keys[::3][:wanted_count], "vehicle_alarm:never stored", 'x", "y']
    lookup = sa.select(suppressed_signal.c.source_key).where(one_of(suppressed_signal.c.source_key, "keys"))
    with engine.connect() as conn:
        found = set(conn.execute(lookup, {"keys": wanted}).scalars())
    assert found == set(keys[::3][:wanted_count])
