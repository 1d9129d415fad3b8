"""What the drills ask the cluster: partition leaders and ISRs, and the group's lag over time."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from workorder_pipeline.wo.kafka_cluster import KafkaCluster, Partition

#: Called while a drill waits: restarts workers that exited (and counts them).
Tick = Callable[[], None]


def most_leading_node(cluster: KafkaCluster, topics: list[str]) -> tuple[int, int]:
    """The node leading the most partitions of ``topics``, and how many it leads."""
    leaders = Counter(state.leader for state in cluster.describe_partitions(topics).values())
    node, count = max(sorted(leaders.items()), key=lambda item: item[1])
    return node, count


def partitions_led_by(cluster: KafkaCluster, topics: list[str], node_id: int) -> int:
    return sum(1 for state in cluster.describe_partitions(topics).values() if state.leader == node_id)


def wait_isr_full(cluster: KafkaCluster, topics: list[str], tick: Tick, timeout_s: float = 180.0) -> None:
    """Until every partition of ``topics`` has a leader and all its replicas in sync."""
    deadline = time.monotonic() + timeout_s
    last: dict[tuple[str, int], Partition] | BaseException = {}
    while time.monotonic() < deadline:
        tick()
        try:
            last = cluster.describe_partitions(topics)
            if last and all(s.leader >= 0 and set(s.isr) == set(s.replicas) for s in last.values()):
                return
        except (OSError, KafkaError) as exc:
            last = exc
        time.sleep(0.5)
    raise TimeoutError(f"ISRs not full after {timeout_s:g} s: {last!r}")


def pause(seconds: float, tick: Tick) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        tick()
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


@dataclass(frozen=True)
class LagSample:
    at: float  # wall clock (time.time()), to compare with the workers' log timestamps
    end: int  # messages in the inbound topics
    committed: int  # of which the group has committed


class LagSampler(threading.Thread):
    """Samples the group's end and committed offsets of ``topics`` about every ``every_s``.

    One consumer (no group membership) asks both; while brokers are down a sample may fail
    or take long: it is skipped, the clock of the next one says when it was taken.
    """

    def __init__(self, bootstrap: str, group: str, topics: list[str], every_s: float = 0.5) -> None:
        super().__init__(name="drill-lag-sampler", daemon=True)
        self.bootstrap, self.group, self.topics, self.every_s = bootstrap, group, topics, every_s
        self.samples: list[LagSample] = []
        self.failed = 0
        self.last_error = ""
        self.stop = threading.Event()

    def _consumer(self) -> Any:
        return KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group,
            enable_auto_commit=False,
            request_timeout_ms=5_000,
        )

    def run(self) -> None:
        consumer: Any = None
        while not self.stop.wait(self.every_s):
            try:
                consumer = consumer or self._consumer()
                partitions = [
                    TopicPartition(t, p) for t in self.topics for p in consumer.partitions_for_topic(t) or ()
                ]
                if {tp.topic for tp in partitions} != set(self.topics):
                    self.failed += 1  # no metadata yet: the client is fetching it
                    continue
                end = consumer.end_offsets(partitions)
                committed = {tp: consumer.committed(tp, timeout_ms=5_000) or 0 for tp in partitions}
            except Exception as exc:  # a broker is down: ask again, with a fresh client
                self.failed += 1
                self.last_error = repr(exc)
                if consumer is not None:
                    consumer.close()
                consumer = None
                continue
            self.samples.append(LagSample(time.time(), sum(end.values()), sum(committed.values())))
        if consumer is not None:
            consumer.close()

    def lag_max(self, since: float) -> int:
        return max((s.end - s.committed for s in self.samples if s.at >= since), default=0)

    def caught_up_at(self, since: float) -> float | None:
        """When the group had committed everything published by ``since`` (wall clock), or None."""
        published = next((s.end for s in self.samples if s.at >= since), None)
        if published is None:
            return None
        return next((s.at for s in self.samples if s.at >= since and s.committed >= published), None)
