"""The figures of this month so far and of last month (calendar months, China time), from the
database, exported by the leader: numerator and denominator apart, per unit, kind and figure,
so that recording rules sum each and divide once (deploy/prometheus/rules). A ratio of
counters cannot give them: a cohort is the orders *created* in a month, judged as they stand
now, and an order moved to another unit takes its counts with it.

Like the open-order gauges, only the faust leader exports them (one series each over N
workers). They are computed at most every ``refresh_seconds``, on a scrape: a database error
leaves them out of that scrape, counted in ``wo_worker_retries_total{task="figure_gauges"}``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

from workorder_pipeline.services.clock import utc_now
from workorder_pipeline.services.figures import (
    ALL_UNITS,
    ScoreWeights,
    UnitFigures,
    figures_for_period,
    month_periods,
)
from workorder_pipeline.services.ports import FigureFactsReader
from workorder_pipeline.streams.resilience import Outage, Task

FIGURE_LABELS = ["unit", "kind", "figure", "period"]
#: Two months of orders are read at most this often (scrapes come every 15 s); the
#: worker's is WO_FIGURES_REFRESH_SECONDS.
REFRESH_SECONDS = 60.0

Computed = dict[str, list[UnitFigures]]


class FigureCollector(Collector):
    def __init__(
        self,
        reader: FigureFactsReader,
        weights: ScoreWeights,
        is_leader: Callable[[], bool],
        clock: Callable[[], datetime] = utc_now,
        refresh_seconds: float = REFRESH_SECONDS,
    ) -> None:
        self._reader = reader
        self._weights = weights
        self._is_leader = is_leader
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._outage = Outage(Task.figure_gauges)
        self._computed: Computed | None = None
        self._computed_at = 0.0

    def describe(self) -> Iterable[Metric]:
        return list(self._families())  # names only: no database, no faust

    def collect(self) -> Iterator[Metric]:
        if not self._is_leader():
            with self._lock:
                self._computed = None  # a new leadership starts from the database again
            return
        computed = self._current()
        if computed is None:
            return
        numerator, denominator, score = self._families()
        for period, rows in computed.items():
            for row in rows:
                if row.unit == ALL_UNITS:
                    continue  # the rules sum the units
                if row.kind is None:
                    if row.score is not None:
                        score.add_metric([row.unit, period], row.score)
                    continue
                for figure, rate in row.rates.items():
                    labels = [row.unit, row.kind.value, figure.value, period]
                    numerator.add_metric(labels, rate.numerator)
                    denominator.add_metric(labels, rate.denominator)
        yield from (numerator, denominator, score)

    def _current(self) -> Computed | None:
        with self._lock:
            fresh = time.monotonic() - self._computed_at < self._refresh_seconds
            if self._computed is not None and fresh:
                return self._computed
            now = self._clock()
            try:
                computed = {
                    name.value: figures_for_period(self._reader, period, self._weights, now)
                    for name, period in month_periods(now).items()
                }
            except Exception as exc:
                self._outage.failed(exc)  # the next scrape is the retry
                return None
            self._outage.succeeded()
            self._computed, self._computed_at = computed, time.monotonic()
            return computed

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "wo_figure_numerator",
                "Orders of the period's cohort (created in the calendar month, China time, held by "
                "the unit now) counted by the figure (processors/figures.py). Leader only.",
                labels=FIGURE_LABELS,
            ),
            GaugeMetricFamily(
                "wo_figure_denominator",
                "Orders of the period's cohort the figure judges (its denominator). Leader only.",
                labels=FIGURE_LABELS,
            ),
            GaugeMetricFamily(
                "wo_figure_score",
                "The score: 100 x the weighted mean of the unit's rates for the period (weights: "
                "policy/figures.yaml); absent when the unit has no rate. Leader only.",
                labels=["unit", "period"],
            ),
        )


def register(
    reader: FigureFactsReader,
    weights: ScoreWeights,
    is_leader: Callable[[], bool],
    refresh_seconds: float = REFRESH_SECONDS,
    registry: CollectorRegistry = REGISTRY,
) -> None:
    registry.register(FigureCollector(reader, weights, is_leader, refresh_seconds=refresh_seconds))
