"""Broker loss, noticed and said: the worker's topics checked at start and periodically.

At start ``wo run`` makes sure the topics exist and records their partition counts (what
it created, or what an external cluster had). :meth:`TopicWatch.check` (a periodic job,
streams/resilience) compares the broker with that record. When a topic is missing or
has another partition count, or the embedded broker died, it says so once
(``kafka_topics_not_as_expected``, ``wo_kafka_topics_not_as_expected``) and closes the
gate: the intake consumer stops (its batch in hand is abandoned), nothing is published.
Then the embedded broker is restarted and its topics re-created (``BrokerChild``); an
external broker is waited for. When the topics are back as expected, the gate opens, the
intake consumes again and what the database holds as unpublished is published again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from prometheus_client import Gauge

from workorder_pipeline.streams.broker_probe import BrokerProbe
from workorder_pipeline.streams.resilience import TopicsNotReady

log = structlog.get_logger(__name__)

#: Topics, how often they are checked by default.
TOPIC_CHECK_SECONDS = 5.0

NOT_AS_EXPECTED = Gauge(
    "wo_kafka_topics_not_as_expected",
    "Topics of this worker missing on the broker or with another partition count than at start "
    "(0: all as expected). While above 0 the worker neither consumes nor publishes.",
)


@dataclass(frozen=True, slots=True)
class TopicDifference:
    missing: tuple[str, ...] = ()
    #: topic -> (partitions expected, partitions found)
    changed: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.missing or self.changed)

    def __len__(self) -> int:
        return len(self.missing) + len(self.changed)

    def describe(self) -> str:
        parts = []
        if self.missing:
            parts.append("missing: " + ", ".join(self.missing))
        if self.changed:
            parts.append(
                "partition count changed: "
                + ", ".join(f"{t} {old} -> {new}" for t, (old, new) in sorted(self.changed.items()))
            )
        return "; ".join(parts)


def compare(expected: Mapping[str, int], found: Mapping[str, int]) -> TopicDifference:
    missing = tuple(sorted(topic for topic in expected if topic not in found))
    changed = {
        topic: (count, found[topic])
        for topic, count in sorted(expected.items())
        if topic in found and found[topic] != count
    }
    return TopicDifference(missing, changed)


class BrokerChild(Protocol):
    """The embedded broker, as the watch sees it (wo/pipeline.py)."""

    def death(self) -> str | None:
        """None while it runs; else what happened to it (for the log)."""
        ...

    async def restart(self) -> None:
        """Start it again and create the worker's topics as at start."""
        ...


class TopicWatch:
    def __init__(
        self,
        probe: BrokerProbe,
        expected: Mapping[str, int],
        on_lost: Callable[[], Awaitable[None]],
        on_restored: Callable[[], Awaitable[None]],
        child: BrokerChild | None = None,
    ) -> None:
        self._probe = probe
        self._expected = dict(expected)
        self._on_lost = on_lost
        self._on_restored = on_restored
        self._child = child
        #: The gate: False from the moment a difference is seen until the topics are back.
        self.as_expected = True
        NOT_AS_EXPECTED.set(0)

    async def check(self) -> None:
        """One check. Raises while the topics are not as expected (the periodic job logs
        that it waits, once, and retries with backoff)."""
        if self._child is not None:
            death = self._child.death()
            if death is not None:
                await self._lost(
                    TopicDifference(missing=tuple(sorted(self._expected))),
                    f"the embedded broker {death}: it lost every topic, every message it held and "
                    "every committed offset (the database keeps the orders); restarting it, "
                    "re-creating the topics and re-publishing what was not dispatched",
                )
                await self._child.restart()
                log.warning("embedded_broker_restarted", topics=len(self._expected))
        difference = compare(self._expected, await self._probe.partition_counts(self._expected))
        if difference and self._child is not None and difference.missing and not difference.changed:
            await self._lost(difference, "re-creating them on the embedded broker")
            await self._child.restart()
            difference = compare(self._expected, await self._probe.partition_counts(self._expected))
        if difference:
            await self._lost(
                difference,
                "waiting for them to be as at start"
                if self._child is None
                else "the embedded broker has other topics than it was given: restart `wo run`",
            )
            raise TopicsNotReady(difference.describe())
        if not self.as_expected:
            NOT_AS_EXPECTED.set(0)
            await self._on_restored()  # if it fails, the next check tries again
            self.as_expected = True
            log.warning("kafka_topics_restored", topics=len(self._expected))

    async def _lost(self, difference: TopicDifference, action: str) -> None:
        NOT_AS_EXPECTED.set(len(difference))
        if not self.as_expected:
            return
        self.as_expected = False
        log.error(
            "kafka_topics_not_as_expected",
            missing=list(difference.missing),
            changed={t: {"expected": e, "found": f} for t, (e, f) in difference.changed.items()},
            detail=f"{difference.describe()}; nothing is consumed or published until they are back: {action}",
        )
        await self._on_lost()
