"""What every measurement shares: the broker, the backlog, the results."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

from benchkit.common import AlarmStream, Config
from benchkit.processes import BenchBroker, cpu_seconds, proc_status_kb
from benchkit.results import Results
from workorder_pipeline.streams.kafka.admin import ensure_topics


class BenchBase:
    def __init__(self, config: Config, broker: BenchBroker, workdir: Path) -> None:
        self.config = config
        self.broker = broker
        self.bootstrap = broker.bootstrap
        self.workdir = workdir
        self.results = Results(broker=broker.kind.value)
        #: (send time ms, latency ms) of each order of the last latency run.
        self.last_latencies: list[tuple[int, int]] = []
        self.backlog = AlarmStream("BL").take(config.messages)
        self.wo = Path(sys.executable).parent / "wo"

    def topic(self, label: str) -> str:
        name = f"bench.{label}.{uuid.uuid4().hex[:6]}"
        ensure_topics(self.bootstrap, [name], self.config.partitions, 1)
        return name

    def broker_cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.broker.pids())

    def broker_rss_mb(self) -> float:
        return sum(proc_status_kb(pid, "VmRSS") for pid in self.broker.pids()) / 1024
