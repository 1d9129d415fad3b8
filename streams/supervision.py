"""Gauges computed when Prometheus scrapes: what the database says, and how far behind we are.

- ``SupervisionCollector``: open and overdue orders and the age of the oldest open order,
  by unit, kind and priority, read from the database. Every worker reads the same
  database, so only the faust leader exports them (``wo_worker_is_leader`` says which
  worker that is): with N workers the series exist once and ``sum by (unit)`` is right.
  During a rebalance no worker may be leader for a moment: the series pause, they do not
  double.
- ``ConsumerLagCollector``: per worker, the messages of its assigned partitions of the
  inbound and command topics it has not committed yet. Partitions are assigned to one
  worker at a time, so ``sum by (topic)`` over the workers is the group's lag. The
  offsets come from ``LagProbe``, which asks the broker every few seconds for each
  partition's log end offset and the group's committed offset: the consumers' own view
  (the high-water mark of their last fetch) stops moving while a batch waits out an
  outage, and the gauge then showed 15-21 where 2,300-4,450 messages were waiting.

Nothing here may fail a scrape: a database error is counted, logged when the gauges start
failing and when they recover (streams/resilience, task ``order_gauges``), and the
database series are left out of that scrape.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import faust
import structlog
from aiokafka import TopicPartition
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import Priority
from workorder_pipeline.services.clock import utc_now
from workorder_pipeline.streams.broker_probe import BrokerProbe
from workorder_pipeline.streams.resilience import Outage, Task

log = structlog.get_logger(__name__)

ORDER_LABELS = ["unit", "kind", "priority"]


class OpenOrderStats(Protocol):
    def open_order_stats(self, now: datetime) -> list[dict[str, Any]]: ...


def faust_leader(app: faust.App) -> Callable[[], bool]:
    """``app.is_leader()``, safe to call from the metrics server's thread: False until the
    worker's consumer exists (asking earlier would create it in the wrong thread) and on
    any error (e.g. during a rebalance)."""

    def is_leader() -> bool:
        if getattr(app, "_consumer", None) is None:
            return False
        try:
            return bool(app.is_leader())
        except Exception:
            return False

    return is_leader


class SupervisionCollector(Collector):
    def __init__(
        self,
        repository: OpenOrderStats,
        units: Iterable[str],
        is_leader: Callable[[], bool],
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._repository = repository
        self._units = sorted(set(units))
        self._is_leader = is_leader
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._outage = Outage(Task.order_gauges)

    def describe(self) -> Iterable[Metric]:
        # Names only: registering must not query the database (nor ask faust anything).
        return [*self._families(), self._leader_family(False), self._failures_family()]

    def collect(self) -> Iterator[Metric]:
        leader = self._is_leader()
        yield self._leader_family(leader)
        if leader:
            yield from self._order_families()
        else:
            with self._lock:
                self._outage.close()  # another worker exports them: this one waits for nothing
        yield self._failures_family()

    def _order_families(self) -> Iterator[Metric]:
        now = self._clock()
        try:
            rows = self._repository.open_order_stats(now)
        except Exception as exc:
            with self._lock:
                self._failures += 1
                self._outage.failed(exc)  # the next scrape is the retry
            return
        with self._lock:
            self._outage.succeeded()
        open_, overdue, oldest = self._families()
        counts: dict[tuple[str, str, str], tuple[int, int]] = {
            (unit, kind.value, priority.value): (0, 0)
            for unit in self._units
            for kind in SignalKind
            for priority in Priority
        }
        for row in rows:
            key = (str(row["unit"]), str(row["kind"]), str(row["priority"]))
            counts[key] = (int(row["open"]), int(row["overdue"] or 0))
            if row["oldest_created_at"] is not None:
                age = (now - row["oldest_created_at"]).total_seconds()
                oldest.add_metric(list(key), max(0.0, age))
        for key, (open_count, overdue_count) in sorted(counts.items()):
            open_.add_metric(list(key), open_count)
            overdue.add_metric(list(key), overdue_count)
        yield from (open_, overdue, oldest)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "wo_work_orders_open",
                "Work orders not closed (returned ones included), by unit, kind and priority; "
                "from the database, exported by the leader worker only.",
                labels=ORDER_LABELS,
            ),
            GaugeMetricFamily(
                "wo_work_orders_overdue",
                "Work orders not closed and past their due_at, by unit, kind and priority; "
                "from the database, exported by the leader worker only.",
                labels=ORDER_LABELS,
            ),
            GaugeMetricFamily(
                "wo_work_orders_oldest_open_age_seconds",
                "Age of the oldest work order not closed, by unit, kind and priority; "
                "from the database, exported by the leader worker only.",
                labels=ORDER_LABELS,
            ),
        )

    @staticmethod
    def _leader_family(leader: bool) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "wo_worker_is_leader",
            "1 on the worker that is the faust leader (it exports the database gauges and fires "
            "escalations), 0 on the others.",
            value=1.0 if leader else 0.0,
        )

    def _failures_family(self) -> CounterMetricFamily:
        with self._lock:
            failures = self._failures
        return CounterMetricFamily(
            "wo_supervision_query_failures",
            "Scrapes whose database query for the open-order gauges failed (those gauges were left out).",
            value=failures,
        )


@dataclass(frozen=True, slots=True)
class PartitionPosition:
    """What the lag gauge needs of one partition assigned to this worker."""

    topic: str
    partition: int
    #: Log end offset as last fetched (None: no fetch answered yet).
    end: int | None
    #: The group's committed offset (0: nothing committed, the log is read from its start).
    committed: int


Positions = Callable[[], list[PartitionPosition]]
#: The (topic, partition) pairs a consumer has now.
Assigned = Callable[[], Iterable[tuple[str, int]]]

#: How often the lag gauge's offsets are asked of the broker.
LAG_REFRESH_SECONDS = 5.0


def faust_assigned(app: faust.App) -> Assigned:
    """The partitions faust's consumer has (the commands topic, faust's own topics)."""

    def assigned() -> list[tuple[str, int]]:
        consumer = getattr(app, "_consumer", None)
        if consumer is None:
            return []
        try:
            return [(tp.topic, tp.partition) for tp in consumer.assignment()]
        except Exception:  # not started, or rebalancing
            return []

    return assigned


class LagProbe:
    """Log end offset and the group's committed offset of each partition the worker's
    consumers have, asked of the broker (a periodic job: streams/resilience)."""

    def __init__(
        self, probe: BrokerProbe, consumers: Sequence[tuple[str, Assigned]], topics: Iterable[str]
    ) -> None:
        """``consumers``: (consumer group, its assigned partitions) per consumer."""
        self._probe = probe
        self._consumers = list(consumers)
        self._topics = frozenset(topics)
        self._positions: list[PartitionPosition] = []

    async def refresh(self) -> None:
        found: list[PartitionPosition] = []
        try:
            for group, assigned in self._consumers:
                partitions = sorted(TopicPartition(t, p) for t, p in assigned() if t in self._topics)
                ends = await self._probe.end_offsets(partitions)
                committed = await self._probe.committed(group, partitions)
                found += [
                    PartitionPosition(tp.topic, tp.partition, ends.get(tp), committed.get(tp, 0))
                    for tp in partitions
                ]
        except BaseException:
            self._positions = []  # unknown while the broker does not answer
            raise
        self._positions = found

    def positions(self) -> list[PartitionPosition]:
        """The last answer (any thread)."""
        return self._positions


class ConsumerLagCollector(Collector):
    """Lag = the partition's log end offset - the group's committed offset (0 before the
    first commit), summed per topic over the partitions this worker has; a partition whose
    log end offset is not known yet (no fetch answered) is left out."""

    def __init__(self, sources: Sequence[Positions], topics: Iterable[str]) -> None:
        self._sources = list(sources)
        self._topics = sorted(set(topics))

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        lag, assigned = self._families()
        per_topic: dict[str, int] = {topic: 0 for topic in self._topics}
        lags: dict[str, int] = {}
        for source in self._sources:
            for position in source():
                if position.topic not in per_topic:
                    continue  # faust's own topics (the leader election)
                per_topic[position.topic] += 1
                if position.end is not None:
                    behind = max(0, position.end - position.committed)
                    lags[position.topic] = lags.get(position.topic, 0) + behind
        for topic, count in per_topic.items():
            assigned.add_metric([topic], count)
            if topic in lags:
                lag.add_metric([topic], lags[topic])
        yield from (lag, assigned)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "wo_kafka_consumer_lag",
                "Messages in this worker's partitions of the topic not yet processed and committed "
                "(log end offset - committed offset). Several workers: sum by (topic).",
                labels=["topic"],
            ),
            GaugeMetricFamily(
                "wo_kafka_assigned_partitions",
                "Partitions of the topic assigned to this worker.",
                labels=["topic"],
            ),
        )


def register(
    app: faust.App,
    repository: OpenOrderStats,
    units: Iterable[str],
    topics: Iterable[str],
    positions: Sequence[Positions] = (),
    registry: CollectorRegistry = REGISTRY,
) -> None:
    """Export the database gauges (leader only) and this worker's consumer lag on ``registry``
    (the partitions of ``positions``: LagProbe.positions)."""
    registry.register(SupervisionCollector(repository, units, faust_leader(app)))
    registry.register(ConsumerLagCollector(positions, topics))
