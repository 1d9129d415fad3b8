"""One snapshot of the months' figures (services/figure_snapshots.py), shared by the leader's
gauges and the console's figures pages: read from SQLite and PostgreSQL at most once per
refresh period, its drill-downs the orders behind each number by the figures' own
definitions (processors/figures.py), never answered once too old."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from tests.integration import figures_month as month
from workorder_pipeline.processors.figures import Figure, OrderFacts, orders_behind
from workorder_pipeline.schemas.figures import ScoreWeights
from workorder_pipeline.services.figure_snapshots import STALE_AFTER, FigureSnapshot, FigureSnapshots
from workorder_pipeline.services.figures import MonthPeriod
from workorder_pipeline.storage.database import create_engine
from workorder_pipeline.storage.figures_read import FigureFacts

pytestmark = pytest.mark.integration

LAST = MonthPeriod.last_month  # November, at month.NOW


class Clock:
    def __init__(self) -> None:
        self.now = month.NOW

    def __call__(self) -> datetime:
        return self.now


class Reader:
    """The database's FigureFacts, counting its reads; ``facts`` can be pointed elsewhere."""

    def __init__(self, engine: Engine) -> None:
        self.facts = FigureFacts(engine)
        self.reads = 0

    def order_facts(self, start: datetime, end: datetime) -> list[OrderFacts]:
        self.reads += 1
        return self.facts.order_facts(start, end)


def orders_counted(snapshot: FigureSnapshot) -> int:
    return (
        next(r for r in snapshot.periods[LAST].rows if r.unit == "*" and r.kind is None)
        .rates[Figure.closed]
        .denominator
    )


def test_the_drill_down_lists_exactly_the_orders_each_number_counts(engine: Engine) -> None:
    month.write(engine, month.generate(300, seed=19))
    snapshot = FigureSnapshots(FigureFacts(engine), ScoreWeights(), Clock()).current()
    november = snapshot.periods[LAST]
    facts = FigureFacts(engine).order_facts(november.period.start, november.period.end)
    checked = 0
    for row in november.rows:
        if row.kind is not None:
            continue
        for figure, rate in row.rates.items():
            for numerator, count in ((True, rate.numerator), (False, rate.denominator)):
                ids = november.behind.ids(row.unit, figure, numerator)
                assert len(ids) == count
                assert ids == orders_behind(facts, november.period, row.unit, figure, numerator, month.NOW)
                checked += count
    assert checked > 0


def test_the_months_are_read_once_per_refresh_period(engine: Engine) -> None:
    month.write(engine, month.generate(40, seed=5))
    clock, reader = Clock(), Reader(engine)
    snapshots = FigureSnapshots(reader, ScoreWeights(), clock, refresh_seconds=60)
    first = snapshots.current()
    month.write(engine, month.generate(30, seed=6))
    clock.now += timedelta(seconds=59)
    assert snapshots.current() is first and reader.reads == 2  # two months, read once
    clock.now += timedelta(seconds=1)
    later = snapshots.current()
    assert later.at == clock.now and reader.reads == 4
    assert orders_counted(later) > orders_counted(first)


def test_a_stale_snapshot_is_answered_at_once_while_the_next_is_read_behind_it(engine: Engine) -> None:
    month.write(engine, month.generate(40, seed=8))
    clock = Clock()
    reader = FigureFacts(engine)
    snapshots = FigureSnapshots(reader, ScoreWeights(), clock, refresh_seconds=60, background=True)
    first = snapshots.current()  # nothing to answer yet: read then
    month.write(engine, month.generate(30, seed=9))
    clock.now += timedelta(seconds=90)
    assert snapshots.current() is first
    deadline = time.monotonic() + 60  # not a performance bound: a guard against hanging
    while (current := snapshots.current()) is first and time.monotonic() < deadline:
        time.sleep(0.05)
    assert current.at == clock.now and orders_counted(current) > orders_counted(first)


def test_a_snapshot_too_old_is_never_answered_and_the_database_error_reaches_the_reader(
    engine: Engine,
) -> None:
    month.write(engine, month.generate(40, seed=10))
    clock, reader = Clock(), Reader(engine)
    snapshots = FigureSnapshots(reader, ScoreWeights(), clock, refresh_seconds=60, background=True)
    snapshots.current()
    nowhere = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")  # nothing listens
    reader.facts = FigureFacts(nowhere)
    clock.now += timedelta(seconds=60 * STALE_AFTER)
    with pytest.raises(OperationalError):
        snapshots.current()


def test_a_clock_set_back_reads_the_months_again(engine: Engine) -> None:
    month.write(engine, month.generate(20, seed=12))
    clock, reader = Clock(), Reader(engine)
    snapshots = FigureSnapshots(reader, ScoreWeights(), clock, refresh_seconds=60)
    snapshots.current()
    clock.now -= timedelta(hours=1)
    assert snapshots.current().at == clock.now and reader.reads == 4


def test_a_snapshot_prepared_at_start_up_is_read_once_in_the_background(engine: Engine) -> None:
    month.write(engine, month.generate(20, seed=13))
    clock, reader = Clock(), Reader(engine)
    snapshots = FigureSnapshots(reader, ScoreWeights(), clock, refresh_seconds=60, background=True)
    snapshots.prepare()
    snapshots.prepare()  # already reading: no second read
    first = snapshots.current()  # waits for the read under way rather than reading again
    assert snapshots.current() is first and first.at == month.NOW and reader.reads == 2
