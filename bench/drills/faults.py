"""The drills' broker actions on a three-node cluster, each with a timeline of what it did.

Every action runs while events flow and workers work; ``tick`` is called while it waits
(the runner restarts a worker that exited there, and counts it as a finding).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from drills.probes import Tick, most_leading_node, partitions_led_by, pause, wait_isr_full
from workorder_pipeline.wo.kafka_cluster import KafkaCluster


class Drill(StrEnum):
    LEADER_KILL = "leader-kill"
    ISR_LOSS = "isr-loss"
    ROLLING_RESTART = "rolling-restart"


@dataclass
class FaultLog:
    """What a drill did and when (wall clock, to compare with the workers' logs)."""

    started: float = 0.0
    #: Every node back and every partition's ISR full again.
    healed: float = 0.0
    steps: list[tuple[float, str]] = field(default_factory=list)

    def step(self, what: str, say: Callable[[str], None]) -> None:
        now = time.time()
        if not self.steps:
            self.started = now
        self.steps.append((now, what))
        say(what)

    def timeline(self) -> list[str]:
        return [f"+{at - self.started:6.1f} s  {what}" for at, what in self.steps]


@dataclass(frozen=True)
class Timing:
    #: Leader kill: how long the killed node stays down.
    down_s: float = 10.0
    #: ISR loss: how long only one replica of each partition is left.
    hold_s: float = 30.0
    #: ISR loss: between stopping the first and the second node.
    gap_s: float = 3.0


def leader_kill(
    cluster: KafkaCluster, topics: list[str], timing: Timing, tick: Tick, say: Callable[[str], None]
) -> FaultLog:
    """SIGKILL the node leading the most partitions of ``topics``; start it again after ``down_s``."""
    log = FaultLog()
    victim, led = most_leading_node(cluster, topics)
    log.step(f"SIGKILL node {victim} (leads {led} of the inbound and dispatched partitions)", say)
    cluster.kill(victim)
    pause(timing.down_s, tick)
    log.step(f"starting node {victim}", say)
    cluster.start_node(victim)
    log.step(f"node {victim} registered; waiting for full ISRs", say)
    wait_isr_full(cluster, topics, tick)
    log.step(f"every ISR full again (node {victim} leads {partitions_led_by(cluster, topics, victim)})", say)
    log.healed = time.time()
    return log


def isr_loss(
    cluster: KafkaCluster, topics: list[str], timing: Timing, tick: Tick, say: Callable[[str], None]
) -> FaultLog:
    """Stop two of the three nodes (SIGTERM) so that each partition has one in-sync replica for
    ``hold_s``: writes with acks=all must wait (NOT_ENOUGH_REPLICAS), not be lost. The
    controller quorum (2 of 3 voters) is lost too while only one node runs."""
    log = FaultLog()
    first, _ = most_leading_node(cluster, topics)
    second = next(node.node_id for node in cluster.nodes if node.node_id != first)
    log.step(f"SIGTERM node {first}", say)
    cluster.stop_node(first)
    pause(timing.gap_s, tick)
    log.step(f"SIGTERM node {second}: one replica left in each ISR", say)
    cluster.stop_node(second)
    pause(timing.hold_s, tick)
    log.step(f"starting node {second}", say)
    cluster.start_node(second)
    log.step(f"starting node {first}", say)
    cluster.start_node(first)
    log.step("both registered; waiting for full ISRs", say)
    wait_isr_full(cluster, topics, tick)
    log.step("every ISR full again", say)
    log.healed = time.time()
    return log


def rolling_restart(
    cluster: KafkaCluster, topics: list[str], timing: Timing, tick: Tick, say: Callable[[str], None]
) -> FaultLog:
    """SIGTERM each node in turn, start it, and wait until it is in every ISR again."""
    log = FaultLog()
    for node in cluster.nodes:
        log.step(f"SIGTERM node {node.node_id}", say)
        cluster.stop_node(node.node_id)
        log.step(f"starting node {node.node_id}", say)
        cluster.start_node(node.node_id)
        wait_isr_full(cluster, topics, tick)
        log.step(f"node {node.node_id} in every ISR again", say)
    log.healed = time.time()
    return log


FAULTS: dict[Drill, Callable[[KafkaCluster, list[str], Timing, Tick, Callable[[str], None]], FaultLog]] = {
    Drill.LEADER_KILL: leader_kill,
    Drill.ISR_LOSS: isr_loss,
    Drill.ROLLING_RESTART: rolling_restart,
}
