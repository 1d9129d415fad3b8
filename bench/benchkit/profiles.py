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

#: Where a sampled stack's time goes: the frame nearest the leaf that matches one of these
#: (generic frames, the last two, only when no specific one matches).
PROFILE_CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("metrics endpoint (scrapes)", ("prometheus_client/exposition", "streams/supervision.py")),
    ("database: SQLAlchemy + driver", ("storage/", "sqlalchemy/", "psycopg", "sqlite3")),
    ("decode + validate", ("processors/intake.py", "processors/signals.py")),
    ("triage, route, open order", ("processors/",)),
    (
        "publish: dispatched + dead letters",
        ("Outputs.", "aiokafka/producer", "publish", "dispatch_message"),
    ),
    ("metrics + logging", ("prometheus_client", "structlog", "logging/", "streams/metrics.py")),
    ("faust + aiokafka consumer", ("faust/", "mode/", "aiokafka/", "streams/intake_consumer.py")),
    ("intake service glue", ("services/",)),
    ("pydantic", ("pydantic",)),
    ("event loop, selectors, thread pool", ("asyncio/", "threading.py", "selectors.py", "concurrent/")),
]


def summarize_profile(path: Path, cpu_us_per_message: float) -> list[str]:
    """py-spy's collapsed stacks (GIL holder) by category: share of the samples, and that share
    of the worker's CPU time per message."""
    counts: dict[str, int] = {}
    total = 0
    specific, generic = PROFILE_CATEGORIES[:-2], PROFILE_CATEGORIES[-2:]
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")[::-1]
        category = "other"
        for rules in (specific, generic):
            found = next(
                (name for frame in frames for name, parts in rules if any(p in frame for p in parts)), None
            )
            if found is not None:
                category = found
                break
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
