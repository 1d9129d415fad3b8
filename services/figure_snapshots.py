"""This month's and last month's figures, read from the database at most every
``refresh_seconds`` and shared: the leader's gauges (streams/figure_gauges.py) and the
console's figures and drill-downs read the same snapshot, so a page never waits for two
months of orders and the numbers and the orders behind them agree.

With ``background``, a snapshot past its age is still answered while a thread reads the next
one (a page stays quick); one older than ``STALE_AFTER`` refresh periods is not answered, it
is read then (an error reading it reaches the caller).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import structlog

from workorder_pipeline.processors.figures import Behind, Period, UnitFigures, behind, unit_figures
from workorder_pipeline.schemas.figures import ScoreWeights
from workorder_pipeline.services.clock import utc_now
from workorder_pipeline.services.figures import MonthPeriod, month_periods
from workorder_pipeline.services.ports import FigureFactsReader

log = structlog.get_logger(__name__)

#: Past this many refresh periods a snapshot is no longer answered, even in the background mode.
STALE_AFTER = 3


@dataclass(frozen=True, slots=True)
class PeriodFigures:
    period: Period
    #: As services.figures.figures_for_period gives them.
    rows: tuple[UnitFigures, ...]
    #: The orders behind each number of ``rows``.
    behind: Behind


@dataclass(frozen=True, slots=True)
class FigureSnapshot:
    #: The moment the orders were read and judged: the figures' age.
    at: datetime
    periods: Mapping[MonthPeriod, PeriodFigures]


def snapshot(reader: FigureFactsReader, weights: ScoreWeights, now: datetime) -> FigureSnapshot:
    """Each month's cohort read once; figures and drill-downs from the same facts."""
    periods = {}
    for name, period in month_periods(now).items():
        facts = reader.order_facts(period.start, period.end)
        rows = tuple(unit_figures(facts, period, weights, now))
        periods[name] = PeriodFigures(period, rows, behind(facts, period, now))
    return FigureSnapshot(now, periods)


class FigureSnapshots:
    def __init__(
        self,
        reader: FigureFactsReader,
        weights: ScoreWeights,
        clock: Callable[[], datetime] = utc_now,
        refresh_seconds: float = 60.0,
        background: bool = False,
    ) -> None:
        if refresh_seconds < 0:
            raise ValueError("refresh_seconds cannot be negative")
        self._reader = reader
        self._weights = weights
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._background = background
        self._state = threading.Lock()  # guards _snapshot and _refreshing
        self._reading = threading.Lock()  # one read of the months at a time
        self._snapshot: FigureSnapshot | None = None
        self._refreshing = False

    @property
    def refresh_seconds(self) -> float:
        return self._refresh_seconds

    def prepare(self) -> None:
        """Read the first snapshot in the background (at start-up: the first page is quick too)."""
        with self._state:
            if self._snapshot is None:
                self._refresh_later()

    def current(self) -> FigureSnapshot:
        """A snapshot at most ``refresh_seconds`` old (see the module's doc for ``background``)."""
        with self._state:
            held = self._snapshot
            if held is not None and self._age(held) < self._refresh_seconds:
                return held
            usable = held is not None and self._age(held) < STALE_AFTER * self._refresh_seconds
            if held is not None and usable and self._background:
                self._refresh_later()
                return held
        return self._read()

    def _refresh_later(self) -> None:
        """Start the background read unless one runs (the caller holds _state)."""
        if not self._refreshing:
            self._refreshing = True
            threading.Thread(target=self._refresh_quietly, name="figure-snapshot", daemon=True).start()

    def _age(self, held: FigureSnapshot) -> float:
        age = (self._clock() - held.at).total_seconds()
        return age if age >= 0 else float("inf")  # a clock set back: read again

    def _read(self) -> FigureSnapshot:
        with self._reading:
            with self._state:  # another caller may have read it while this one waited
                held = self._snapshot
                if held is not None and self._age(held) < self._refresh_seconds:
                    return held
            fresh = snapshot(self._reader, self._weights, self._clock())
            with self._state:
                self._snapshot = fresh
            return fresh

    def _refresh_quietly(self) -> None:
        try:
            self._read()
        except Exception as exc:  # the stale snapshot stays; the next page past its age retries
            log.warning("figure_snapshot_failed", error=type(exc).__name__)
        finally:
            with self._state:
                self._refreshing = False
