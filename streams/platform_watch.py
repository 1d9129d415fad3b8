"""Platform silence, judged from the database when Prometheus scrapes the leader.

For every platform of policy/platforms.yaml: whether it is silent by its cadence
(processors/platform_silence.py) and the newest event time the database holds. The
database keeps that time across restarts and for as long as the platform stays silent,
and a platform never heard of is silent too: the worker's own memory
(``wo_platform_last_event_timestamp_seconds``) forgets both when it restarts.

Like the open-order gauges, only the faust leader exports them (one series per platform
over N workers). A database error leaves them out of that scrape; it is counted in
``wo_worker_retries_total{task="platform_gauges"}`` and logged when it starts and ends.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

from workorder_pipeline.schemas.platforms import Cadence, ExpectedPlatform, PlatformRegistry
from workorder_pipeline.services.clock import utc_now
from workorder_pipeline.services.platform_silence import SilenceJudge
from workorder_pipeline.streams.resilience import Outage, Task

#: The allowance a daily platform is shown with on the dashboard: one day between
#: deliveries (whether it is silent is decided by its due time, not by this).
DAY_SECONDS = 86400.0


class LastSeen(Protocol):
    def last_seen(self) -> dict[str, datetime]: ...


class PlatformSilenceCollector(Collector):
    def __init__(
        self,
        reads: LastSeen,
        registry: PlatformRegistry,
        is_silent: SilenceJudge,
        is_leader: Callable[[], bool],
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._reads = reads
        self._platforms = sorted(registry.platforms, key=lambda p: p.id)
        self._is_silent = is_silent
        self._is_leader = is_leader
        self._clock = clock
        self._lock = threading.Lock()
        self._outage = Outage(Task.platform_gauges)

    def describe(self) -> Iterable[Metric]:
        return list(self._families())  # names only: no database, no faust

    def collect(self) -> Iterator[Metric]:
        if not self._platforms or not self._is_leader():
            return
        now = self._clock()
        try:
            seen = self._reads.last_seen()
        except Exception as exc:
            with self._lock:
                self._outage.failed(exc)  # the next scrape is the retry
            return
        with self._lock:
            self._outage.succeeded()
        silent, last, limit = self._families()
        for platform in self._platforms:
            at = seen.get(platform.id)
            labels = [platform.id, platform.cadence.value]
            silent.add_metric(labels, 1.0 if self._is_silent(platform, at, now) else 0.0)
            limit.add_metric(labels, allowance_seconds(platform))
            if at is not None:
                last.add_metric(labels, at.timestamp())
        yield from (silent, last, limit)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "wo_platform_silent",
                "1 when an expected publishing platform (policy/platforms.yaml) is silent by its "
                "cadence, or never sent anything; 0 when it is heard. From the database, leader only.",
                labels=["platform", "cadence"],
            ),
            GaugeMetricFamily(
                "wo_platform_last_seen_timestamp_seconds",
                "Newest event time the database holds for an expected publishing platform (absent: "
                "never heard of). Leader only.",
                labels=["platform", "cadence"],
            ),
            GaugeMetricFamily(
                "wo_platform_silence_allowed_seconds",
                "The silence an expected platform is allowed by its cadence (working_hours: of opening "
                "hours; daily: a day, its due time decides). Leader only.",
                labels=["platform", "cadence"],
            ),
        )


def allowance_seconds(platform: ExpectedPlatform) -> float:
    if platform.cadence is Cadence.daily or platform.silent_after_minutes is None:
        return DAY_SECONDS
    return platform.silent_after_minutes * 60.0


def register(
    reads: LastSeen,
    platforms: PlatformRegistry,
    is_silent: SilenceJudge,
    is_leader: Callable[[], bool],
    registry: CollectorRegistry = REGISTRY,
) -> None:
    registry.register(PlatformSilenceCollector(reads, platforms, is_silent, is_leader))
