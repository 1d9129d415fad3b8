"""The crash test's figures and verdict."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from crashkit.config import CrashConfig
from workorder_pipeline.config.settings import ProcessingGuarantee


@dataclass
class CrashReport:
    config: CrashConfig
    backend: str
    signal_messages: int = 0
    resends: int = 0
    invalid: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    distinct_sent: int = 0
    expected_orders: int = 0
    expected_merged: int = 0
    expected_suppressed: int = 0
    orders: int = 0
    sources_recorded: int = 0
    merged: int = 0
    suppressed: int = 0
    #: Publisher ids recorded twice, plus orders that should not exist (a second order for
    #: what should have been merged or recorded once).
    duplicates: int = 0
    #: Publisher ids sent but recorded nowhere.
    lost: int = 0
    #: Sources recorded under another order than triage gives them (or not sent at all).
    misrecorded: int = 0
    occurrences_off: int = 0
    not_dispatched: int = 0
    dispatched_messages: int = 0
    #: Order versions (order, recipient, unit in charge) seen more than once, read_committed.
    republished: int = 0
    #: Of those, versions published by a reassignment command (the outbox, not intake).
    command_versions: int = 0
    command_versions_republished: int = 0
    dead_letters_expected: int = 0
    dead_letters_distinct: int = 0
    command_messages: int = 0
    command_resends: int = 0
    distinct_commands: int = 0
    commands_recorded: int = 0
    command_outcomes: Counter[str] = field(default_factory=Counter)
    commands_lost: int = 0
    applied_twice: int = 0
    #: Command ids with more than one audit event of any kind (applied or refused).
    handled_twice: int = 0
    status_mismatches: int = 0
    lifecycle_messages: int = 0
    lifecycle_republished: int = 0
    #: Commands recorded as handled of which no lifecycle event was ever published.
    lifecycle_missing: int = 0
    lifecycle_missing_ids: list[str] = field(default_factory=list)
    caught_up: bool = False
    kills: int = 0
    starts: int = 0
    unexpected_exits: list[int] = field(default_factory=list)
    batch_retries: int = 0
    final_exit_codes: list[int | None] = field(default_factory=list)
    elapsed_s: float = 0.0
    workdir: str = ""

    def failures(self) -> list[str]:
        """What makes the run fail: duplicates, losses, commands applied twice, and any other
        broken invariant of the processing guarantee."""
        checks = {
            "duplicates": self.duplicates,
            "lost": self.lost,
            "commands applied twice": self.applied_twice,
            "commands handled twice": self.handled_twice,
            "commands lost": self.commands_lost,
            "sources under the wrong order": self.misrecorded,
            "orders never dispatched": self.not_dispatched,
            "occurrence counts off": self.occurrences_off,
            "order status not what its commands made it": self.status_mismatches,
            "dead letters lost": self.dead_letters_expected - self.dead_letters_distinct,
            "orders other than expected": abs(self.orders - self.expected_orders),
            "lifecycle events never published": self.lifecycle_missing,
            "orders seen twice by a read_committed consumer (exactly once)": (
                self.republished if self.config.guarantee is ProcessingGuarantee.exactly_once else 0
            ),
            "lifecycle events seen twice by a read_committed consumer (exactly once)": (
                self.lifecycle_republished if self.config.guarantee is ProcessingGuarantee.exactly_once else 0
            ),
        }
        found = [f"{name}: {value}" for name, value in checks.items() if value]
        if not self.caught_up:
            found.append("the consumer group did not commit everything in time")
        return found

    def table(self) -> str:
        c = self.config
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(self.command_outcomes.items())) or "none"
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(self.by_kind.items()))
        rows: list[tuple[str, str]] = [
            ("signals sent (messages on the inbound topics)", f"{self.signal_messages:,}"),
            ("  exact re-sends", f"{self.resends:,}"),
            ("  invalid (must be dead-lettered)", f"{self.invalid:,}"),
            ("distinct publisher ids sent", f"{self.distinct_sent:,} ({kinds})"),
            ("orders (expected)", f"{self.orders:,} ({self.expected_orders:,})"),
            (
                "sources recorded (work_order_source + suppressed_signal)",
                f"{self.sources_recorded:,} "
                f"({self.sources_recorded - self.suppressed:,} + {self.suppressed:,})",
            ),
            ("  merged into an open order (expected)", f"{self.merged:,} ({self.expected_merged:,})"),
            ("  suppressed (expected)", f"{self.suppressed:,} ({self.expected_suppressed:,})"),
            ("duplicates", f"{self.duplicates}"),
            ("lost", f"{self.lost}"),
            ("sources under the wrong order", f"{self.misrecorded}"),
            ("orders never dispatched", f"{self.not_dispatched}"),
            (
                f"re-published on workorders.dispatched, read_committed ({c.guarantee.value})",
                f"{self.republished:,} ({self.dispatched_messages:,} messages)",
            ),
            (
                "  of which versions made by reassign commands",
                f"{self.command_versions_republished:,} ({self.command_versions:,} versions)",
            ),
            (
                "dead letters (distinct sources / expected)",
                f"{self.dead_letters_distinct:,} / {self.dead_letters_expected:,}",
            ),
            ("commands sent (messages)", f"{self.command_messages:,} ({self.command_resends:,} re-sent)"),
            ("distinct command ids sent", f"{self.distinct_commands:,}"),
            ("commands recorded (processed_command)", f"{self.commands_recorded:,} ({outcomes})"),
            ("commands lost", f"{self.commands_lost}"),
            ("commands applied twice", f"{self.applied_twice}"),
            ("commands handled twice (any audit event)", f"{self.handled_twice}"),
            ("orders whose status disagrees with their commands", f"{self.status_mismatches}"),
            (
                f"lifecycle events re-published, read_committed ({c.guarantee.value})",
                f"{self.lifecycle_republished:,} ({self.lifecycle_messages:,} messages)",
            ),
            ("lifecycle events never published (recorded commands)", f"{self.lifecycle_missing}"),
            ("consumer group caught up", "yes" if self.caught_up else "NO"),
            ("kills (SIGKILL)", f"{self.kills}"),
            ("worker starts", f"{self.starts}"),
            (
                "unexpected worker exits",
                f"{len(self.unexpected_exits)} {self.unexpected_exits or ''}".strip(),
            ),
            ("outages a task waited out (worker_waiting lines)", f"{self.batch_retries}"),
            ("exit codes at the final SIGTERM", " ".join(str(code) for code in self.final_exit_codes)),
            ("elapsed", f"{self.elapsed_s:.1f} s"),
        ]
        width = max(len(name) for name, _ in rows)
        title = (
            f"crash test: {c.workers} worker(s), {self.backend}, seed {c.seed}, "
            f"{c.signals:,} signals, {c.kills} kills"
        )
        lines = [title, "-" * (width + 24)]
        lines += [f"{name:<{width}}  {value}" for name, value in rows]
        failures = self.failures()
        lines.append("-" * (width + 24))
        lines.append("RESULT: " + ("FAIL: " + "; ".join(failures) if failures else "pass"))
        return "\n".join(lines)
