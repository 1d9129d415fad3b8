"""A drill's figures: the crash test's audit plus what the fault did to intake, and the tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drills.faults import Drill, FaultLog


@dataclass
class DrillReport:
    drill: Drill
    workers: int
    events: int
    #: bench/crash_test.py's CrashReport, filled by its audit.
    audit: Any
    fault: FaultLog = field(default_factory=FaultLog)
    #: Longest time without an intake batch (any worker) that overlaps the fault.
    pause_s: float | None = None
    #: Longest time without an intake batch before the fault (the load's own rhythm).
    normal_gap_s: float | None = None
    #: From the end of that pause until everything published by then was committed.
    catch_up_s: float | None = None
    max_lag: int = 0
    lag_at_end: int | None = None
    #: Lag samples taken, and attempts that failed (brokers down), with the last error.
    lag_samples: int = 0
    lag_sample_failures: int = 0
    lag_sample_error: str = ""
    publish_error: str = ""
    unexpected_exits: list[int] = field(default_factory=list)
    final_exit_codes: list[int | None] = field(default_factory=list)
    log_counts: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    workdir: str = ""

    def failures(self) -> list[str]:
        found = list(self.audit.failures())
        if self.publish_error:
            found.append(f"publishing failed: {self.publish_error}")
        if self.unexpected_exits:
            found.append(f"workers exited on their own: {self.unexpected_exits}")
        if any(code != 0 for code in self.final_exit_codes):
            found.append(f"exit codes at the final SIGTERM: {self.final_exit_codes}")
        if self.lag_at_end != 0:
            found.append(f"consumer lag at the end: {self.lag_at_end}")
        if not self.fault.healed:
            found.append("the cluster did not heal (a node or an ISR did not come back)")
        return found

    def summary(self) -> list[str]:
        return [
            self.drill.value,
            str(self.workers),
            f"{self.audit.signal_messages:,}",
            f"{self.audit.orders:,}",
            str(self.audit.lost),
            str(self.audit.duplicates),
            str(self.audit.not_dispatched),
            f"{self.audit.republished:,}",
            _seconds(self.pause_s),
            _seconds(self.normal_gap_s),
            _seconds(self.catch_up_s),
            f"{self.max_lag:,}",
            "-" if self.lag_at_end is None else f"{self.lag_at_end:,}",
            str(len(self.unexpected_exits)),
            "pass" if not self.failures() else "FAIL",
        ]

    def details(self) -> str:
        counts = ", ".join(f"{name} {count}" for name, count in sorted(self.log_counts.items()))
        lines = [
            f"drill {self.drill.value}, {self.workers} worker(s), {self.events:,} events, "
            f"{self.elapsed_s:.0f} s; logs: {self.workdir or '(removed)'}",
            *("  " + line for line in self.fault.timeline()),
            f"  worker log lines: {counts or 'none counted'}",
            f"  lag samples: {self.lag_samples} taken, {self.lag_sample_failures} failed"
            + (f" (last: {self.lag_sample_error[:200]})" if self.lag_sample_error else ""),
            f"  final exit codes: {' '.join(str(code) for code in self.final_exit_codes)}",
        ]
        failures = self.failures()
        lines.append("  RESULT: " + ("FAIL: " + "; ".join(failures) if failures else "pass"))
        return "\n".join(lines)


HEADER = [
    "drill",
    "workers",
    "events",
    "orders",
    "lost",
    "duplicates",
    "not on dispatched",
    "re-published",
    "intake paused",
    "normal gap",
    "catch-up",
    "max lag",
    "lag at end (both groups)",
    "worker exits",
    "result",
]


def table(reports: list[DrillReport]) -> str:
    """A Markdown table, one row per drill, then each drill's timeline."""
    rows = [HEADER, *(report.summary() for report in reports)]
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|" + "---|" * len(HEADER))
    notes = [
        "",
        "intake paused: longest time without an intake batch (any worker) overlapping the fault;",
        "normal gap: the same before the fault (the load's rhythm); catch-up: from the end of the",
        "pause until the group had committed everything published by then; max lag: the intake",
        "group's, from the fault on; lag at end: the intake and the commands group's, in messages.",
    ]
    return "\n".join(lines + notes + ["", *(report.details() for report in reports)])


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"
