"""The figures of this month so far and of last month (calendar months, China time), from the
database, exported by the leader: numerator and denominator apart, per unit, kind and figure,
so that recording rules sum each and divide once (deploy/prometheus/rules). A ratio of
counters cannot give them: a cohort is the orders *created* in a month, judged as they stand
now, and an order moved to another unit takes its counts with it.

Like the open-order gauges, only the faust leader exports them (one series each over N
workers). They come from the process's figure snapshot (services/figure_snapshots.py, read at
most every WO_FIGURES_REFRESH_SECONDS), the one the console's figures pages read too: a
database error with no snapshot young enough leaves them out of that scrape, counted in
``wo_worker_retries_total{task="figure_gauges"}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

from workorder_pipeline.services.figure_snapshots import FigureSnapshot, FigureSnapshots
from workorder_pipeline.services.figures import (
    ALL_UNITS,
)
from workorder_pipeline.streams.resilience import Outage, Task

FIGURE_LABELS = ["unit", "kind", "figure", "period"]


class FigureCollector(Collector):
    def __init__(self, snapshots: FigureSnapshots, is_leader: Callable[[], bool]) -> None:
        self._snapshots = snapshots
        self._is_leader = is_leader
        self._outage = Outage(Task.figure_gauges)

    def describe(self) -> Iterable[Metric]:
        return list(self._families())  # names only: no database, no faust

    def collect(self) -> Iterator[Metric]:
        if not self._is_leader():
            return
        current = self._current()
        if current is None:
            return
        numerator, denominator, score = self._families()
        for name, figures in current.periods.items():
            period = name.value
            for row in figures.rows:
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

    def _current(self) -> FigureSnapshot | None:
        try:
            current = self._snapshots.current()
        except Exception as exc:
            self._outage.failed(exc)  # the next scrape is the retry
            return None
        self._outage.succeeded()
        return current

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
    snapshots: FigureSnapshots, is_leader: Callable[[], bool], registry: CollectorRegistry = REGISTRY
) -> None:
    registry.register(FigureCollector(snapshots, is_leader))
