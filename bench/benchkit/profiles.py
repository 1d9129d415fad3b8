"""py-spy sampling of the workers (--profile) and where their CPU goes."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from benchkit.base import BenchBase
from benchkit.common import BenchmarkError
from benchkit.processes import Child, cpu_seconds

# --- profiles ------------------------------------------------------------------------------

#: Where a sampled stack's time goes, by top-level area: the first rule one of whose markers
#: is anywhere in the stack. Nearest-leaf rules put every stack under mode's
#: ``Service._execute_task`` and ``Worker.execute_from_commandline`` (the roots of the event
#: loop's work) in "faust": the loop, the consumer and the producer were counted as faust's.
PROFILE_CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("Intake.handle (storage, decode, triage; a thread)", ("Intake.handle ",)),
    ("Intake.record (storage, triage; a thread)", ("Intake.record ",)),
    ("Intake.admit (decode, validate; a thread, read ahead)", ("Intake.admit ",)),
    ("Intake.dispatched (the mark; a thread)", ("Intake.dispatched ",)),
    ("metrics endpoint (scrapes)", ("prometheus_client/exposition", "streams/supervision.py")),
    ("publish: building the messages", ("Outputs.messages ",)),
    ("publish: batches, producer, acks", ("Outputs.", "aiokafka/producer")),
    ("offsets commit", ("BatchConsumer._commit",)),
    ("metrics + logging", ("prometheus_client", "structlog", "logging/", "streams/metrics.py")),
    ("faust's own (agents, its consumer thread)", ("faust/", "mode/threads.py")),
    ("aiokafka: fetching, reading every response", ("aiokafka/", "BatchConsumer._messages")),
    ("other background work (timers, relay, watches)", ("streams/", "services/", "storage/")),
    ("thread hand-offs (to_thread)", ("concurrent/", "threading.py", "to_thread", "_chain_future")),
    ("event loop (selector, callbacks)", ("asyncio/", "selectors.py")),
]


def summarize_profile(path: Path, cpu_us_per_message: float) -> list[str]:
    """py-spy's collapsed stacks (GIL holder) by area: share of the samples, and that share
    of the worker's CPU time per message."""
    counts: dict[str, int] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        category = next(
            (name for name, markers in PROFILE_CATEGORIES if any(m in stack for m in markers)), "other"
        )
        counts[category] = counts.get(category, 0) + count
    lines = [f"{path.name}: {total:,} samples of the GIL holder, worker CPU {cpu_us_per_message:,.0f} µs/msg"]
    for category, count in sorted(counts.items(), key=lambda item: -item[1]):
        lines.append(f"  {count / total:6.1%}  ~{count / total * cpu_us_per_message:5.0f} µs/msg  {category}")
    return lines


class Profiling(BenchBase):
    @contextlib.contextmanager
    def _profiling(
        self, children: list[Child], run: str, cpu0: list[float], counts0: list[int]
    ) -> Iterator[None]:
        """Sample each worker while the block runs (--profile), then summarize where its CPU went."""
        names = [f"{run}-{child.pid}" for child in children]
        profilers = [self._profile(child, name) for child, name in zip(children, names, strict=True)]
        try:
            yield
        finally:
            for profiler in profilers:
                if profiler is not None:
                    profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                    profiler.wait(timeout=60)
        if self.config.profile_dir is None:
            return
        for child, name, cpu_before, handled_before in zip(children, names, cpu0, counts0, strict=True):
            path = self.config.profile_dir / f"{name}.txt"
            handled_here = child.read_batches() - handled_before
            if path.exists() and handled_here:
                cpu_us = (cpu_seconds(child.pid) - cpu_before) / handled_here * 1e6
                self.results.profiles += summarize_profile(path, cpu_us)

    def _profile(self, child: Child, name: str) -> subprocess.Popen[bytes] | None:
        """py-spy sampling ``child`` (--profile): collapsed stacks, and a flame graph from them."""
        if self.config.profile_dir is None:
            return None
        # py-spy is not a dependency: the venv's, else the one on PATH.
        beside = Path(sys.executable).parent / "py-spy"
        py_spy = str(beside) if beside.exists() else shutil.which("py-spy")
        if py_spy is None:
            raise BenchmarkError(f"--profile needs py-spy: {Path(sys.executable).parent}/pip install py-spy")
        self.config.profile_dir.mkdir(parents=True, exist_ok=True)
        output = self.config.profile_dir / f"{name}.txt"
        print(f"  profiling pid {child.pid} -> {output}", flush=True)
        return subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(child.pid),
                "--rate",
                "250",
                "--gil",  # the thread holding the GIL: where the worker's Python CPU goes
                "--format",
                "raw",
                "-o",
                str(output),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(self.workdir / f"py-spy-{name}.log").open("ab"),
        )
