"""Rows, ratios, targets and the printed report."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from benchkit.common import (
    BATCH_SECONDS,
    BATCH_SIZE,
    ISSUE_FAUST_RATE,
    TARGET_P99_LOAD,
    TARGET_P99_MS,
    TARGET_PIPELINE_OVER_FAUST,
    TARGET_PIPELINE_OVER_QUIX,
    TARGET_POSTGRES_RATE,
    TARGET_SCALING,
    Config,
)
from benchkit.processes import load_average

# --- results -----------------------------------------------------------------------------


@dataclass
class Row:
    what: str
    database: str = "-"
    workers: int = 1
    offered: float | None = None
    rate: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    peak_rss_mb: float | None = None
    cpu_us: float | None = None
    broker_cpu_us: float | None = None
    note: str = ""
    #: The broker it was measured on (set by ``Results.add``); "none" for in-process rows.
    broker: str = "-"
    #: The 1-minute load average when the row was measured (set by ``Results.add``).
    load: str = ""


@dataclass
class SoakWindow:
    """One minute of a soak: the orders sent in it and their latency, and RSS at its end."""

    minute: int
    orders: int
    p50: float
    p99: float
    worker_rss_mb: float
    broker_rss_mb: float


@dataclass
class Results:
    #: The broker the rows were measured on (``BrokerKind`` value).
    broker: str = "-"
    rows: list[Row] = field(default_factory=list)
    soak: list[tuple[float, float]] = field(default_factory=list)  # (seconds, worker RSS MB)
    soak_broker: list[tuple[float, float]] = field(default_factory=list)  # (seconds, broker RSS MB)
    soak_windows: list[SoakWindow] = field(default_factory=list)
    soak_note: str = ""
    profiles: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        if row.broker == "-":
            row.broker = self.broker
        if not row.load:
            row.load = load_average().split()[0]
        self.rows.append(row)
        print(f"  -> {format_row(row)}", flush=True)
        return row

    def find(
        self, what: str, database: str = "-", workers: int = 1, offered: float | None = None
    ) -> Row | None:
        for row in self.rows:
            if (row.what, row.database, row.workers, row.offered) == (what, database, workers, offered):
                return row
        return None


def _num(value: float | None, digits: int = 0) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def format_row(row: Row) -> str:
    return " | ".join(
        [
            row.what,
            row.broker,
            row.database,
            str(row.workers),
            _num(row.offered),
            _num(row.rate),
            _num(row.p50),
            _num(row.p95),
            _num(row.p99),
            _num(row.peak_rss_mb),
            _num(row.cpu_us),
            _num(row.broker_cpu_us),
            row.load,
            row.note,
        ]
    )


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def soak_windows(
    latencies: list[tuple[int, int]],
    worker_rss: list[tuple[float, float]],
    broker_rss: list[tuple[float, float]],
) -> list[SoakWindow]:
    """Per minute of sending: orders, p50 and p99 latency, and the last RSS samples in it."""
    if not latencies:
        return []
    first = min(sent for sent, _ in latencies)
    by_minute: dict[int, list[int]] = {}
    for sent, latency in latencies:
        by_minute.setdefault((sent - first) // 60_000, []).append(latency)

    def rss_at(samples: list[tuple[float, float]], minute: int) -> float:
        inside = [mb for seconds, mb in samples if seconds < (minute + 1) * 60]
        return inside[-1] if inside else 0.0

    return [
        SoakWindow(
            minute + 1,
            len(values),
            percentile(values, 50),
            percentile(values, 99),
            rss_at(worker_rss, minute),
            rss_at(broker_rss, minute),
        )
        for minute, values in sorted(by_minute.items())
    ]


# --- report --------------------------------------------------------------------------------


HEADER = (
    "measurement | broker | database | workers | offered ev/s | rate msg/s | p50 ms | p95 ms | p99 ms "
    "| peak RSS MB | worker CPU µs/msg | broker CPU µs/msg | load 1 min | note"
)


def report(config: Config, runs: list[tuple[str, Results]], loads_seen: list[str]) -> tuple[str, bool]:
    """The rows of every broker in one table, then each broker's ratios, targets and soak."""
    lines = [
        "",
        f"Benchmark: {config.messages:,} vehicle alarms (50% new, 30% re-sent, 20% repeats), "
        f"{config.partitions} partitions, intake batches of {BATCH_SIZE} / "
        f"{BATCH_SECONDS:g} s, one at most every {config.batch_interval_ms} ms, "
        f"worker fetch wait {config.fetch_wait_ms} ms; brokers: {'; '.join(label for label, _ in runs)}",
        f"machine: {os.cpu_count()} cores; 1-minute load average during the run: {load_summary(loads_seen)}",
        "",
        "| " + HEADER + " |",
        "|" + "---|" * len(HEADER.split(" | ")),
    ]
    lines += ["| " + format_row(row) + " |" for _, results in runs for row in results.rows]
    met = True
    for label, results in runs:
        ratios, targets = ratio_lines(config, results)
        anchor_ratios, anchor_targets = anchor_ratio_lines(config, results)
        ratios, targets = ratios + anchor_ratios, targets + anchor_targets
        if ratios:
            lines += ["", f"Ratios ({label}, same run):", *ratios]
        if targets:
            lines += ["", f"Targets ({label}):", *targets]
        lines += soak_lines(results)
        if results.profiles:
            lines += ["", f"Where the worker's time goes (py-spy, {label}):", *results.profiles]
        met = met and not any("MISSED" in line for line in targets)
    return "\n".join(lines), met


def soak_lines(results: Results) -> list[str]:
    if not results.soak:
        return []
    lines = [
        "",
        "Soak: worker RSS (MB) every 10 s: " + ", ".join(f"{mb:.0f}" for _, mb in results.soak),
        "Soak: broker RSS (MB) every 10 s: " + ", ".join(f"{mb:.0f}" for _, mb in results.soak_broker),
        results.soak_note,
        "",
        "| minute | orders | p50 ms | p99 ms | worker RSS MB | broker RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {w.minute} | {w.orders:,} | {w.p50:,.0f} | {w.p99:,.0f} "
        f"| {w.worker_rss_mb:.0f} | {w.broker_rss_mb:.0f} |"
        for w in results.soak_windows
    ]
    return lines


def load_summary(loads_seen: list[str]) -> str:
    one_minute = [float(reading.split()[0]) for reading in loads_seen]
    return f"{min(one_minute):.2f} to {max(one_minute):.2f} ({len(one_minute)} readings, one per step)"


def ratio_lines(config: Config, results: Results) -> tuple[list[str], list[str]]:
    ratios: list[str] = []
    targets: list[str] = []
    raw = results.find("aiokafka getmany (raw)")
    faust_take = results.find("faust agent, parse only: noack_take batches (as the pipeline)")
    faust_event = results.find("faust agent, parse only: per event (async for)")
    faust_best = max(
        (row for row in (faust_take, faust_event) if row is not None and row.rate),
        key=lambda row: row.rate or 0,
        default=None,
    )

    def verdict(ok: bool) -> str:
        return "met" if ok else "MISSED"

    for kind in config.databases:
        one = results.find("pipeline: backlog", kind, 1)
        if one is None or one.rate is None:
            continue
        if faust_best is not None and faust_best.rate:
            ratio = one.rate / faust_best.rate
            ratios.append(f"- pipeline ({kind}, 1 worker) / faust parse-only (best of the two): {ratio:.2f}")
            targets.append(
                f"- pipeline >= {TARGET_PIPELINE_OVER_FAUST:.0%} of faust parse-only ({kind}): "
                f"{ratio:.0%}: {verdict(ratio >= TARGET_PIPELINE_OVER_FAUST)}"
            )
        if raw is not None and raw.rate:
            ratios.append(f"- pipeline ({kind}, 1 worker) / raw aiokafka consume: {one.rate / raw.rate:.3f}")
        if kind == "postgres":
            targets.append(
                f"- >= {TARGET_POSTGRES_RATE:,.0f} signals/s per worker with PostgreSQL: {one.rate:,.0f}: "
                f"{verdict(one.rate >= TARGET_POSTGRES_RATE)}"
            )
        two = results.find("pipeline: backlog", kind, 2)
        if two is not None and two.rate:
            scale = two.rate / one.rate
            ratios.append(f"- 2 workers / 1 worker ({kind}): {scale:.2f}")
            targets.append(
                f"- 2 workers >= {TARGET_SCALING}x one worker ({kind}): {scale:.2f}x: "
                f"{verdict(scale >= TARGET_SCALING)}"
            )
        for workers in config.workers:
            latency = results.find(
                f"pipeline: latency @ {TARGET_P99_LOAD} ev/s", kind, workers, TARGET_P99_LOAD
            )
            if latency is not None and latency.p99 is not None:
                targets.append(
                    f"- p99 event->dispatched < {TARGET_P99_MS:.0f} ms at {TARGET_P99_LOAD} ev/s "
                    f"({kind}, {workers} worker{'s' if workers > 1 else ''}): {latency.p99:,.0f} ms: "
                    f"{verdict(latency.p99 < TARGET_P99_MS)}"
                )
    if faust_best is not None and faust_best.rate and any("signals/s" in t or "ev/s" in t for t in targets):
        low, high = ISSUE_FAUST_RATE
        targets.append(
            f"- (the absolute targets were set where faust parsed {low:,}-{high:,} msg/s; here it "
            f"parses {faust_best.rate:,.0f}: {faust_best.rate / high:.2f}-{faust_best.rate / low:.2f}x that)"
        )
    if faust_take is not None and faust_event is not None and faust_take.rate and faust_event.rate:
        ratios.append(f"- faust parse-only, batches / per event: {faust_take.rate / faust_event.rate:.2f}")
    if raw is not None and raw.rate and faust_best is not None and faust_best.rate:
        ratios.append(f"- faust parse-only / raw aiokafka consume: {faust_best.rate / raw.rate:.3f}")
    targets += soak_target(results)
    return ratios, targets


def anchor_ratio_lines(config: Config, results: Results) -> tuple[list[str], list[str]]:
    """The pipeline against the Quix anchor's dedupe app, measured on the same broker in the run."""
    quix = results.find("Quix anchor: Quix Streams dedupe app")
    if quix is None or not quix.rate:
        return [], []
    ratios: list[str] = []
    targets: list[str] = []
    for kind in config.databases:
        one = results.find("pipeline: backlog", kind, 1)
        if one is None or not one.rate:
            continue
        ratio = one.rate / quix.rate
        ratios.append(f"- pipeline ({kind}, 1 worker) / Quix dedupe app: {ratio:.3f}")
        if kind == "postgres":
            verdict = "met" if ratio >= TARGET_PIPELINE_OVER_QUIX else "MISSED"
            targets.append(
                f"- pipeline (postgres, 1 worker) >= {TARGET_PIPELINE_OVER_QUIX}x the Quix dedupe app: "
                f"{ratio:.2f}x: {verdict}"
            )
        two = results.find("pipeline: backlog", kind, 2)
        if two is not None and two.rate:
            ratios.append(f"- pipeline ({kind}, 2 workers) / Quix dedupe app: {two.rate / quix.rate:.3f}")
    return ratios, targets


def soak_target(results: Results) -> list[str]:
    """Memory flat over the soak: the second half's mean RSS within 10% of the first half's."""
    if not results.soak:
        return []
    half = [mb for seconds, mb in results.soak if seconds >= results.soak[-1][0] / 2]
    first = [mb for seconds, mb in results.soak if seconds < results.soak[-1][0] / 2]
    if not (first and half):
        return []
    growth = statistics.mean(half) - statistics.mean(first)
    results.soak_note = (
        f"RSS first half {statistics.mean(first):.0f} MB, second half {statistics.mean(half):.0f} MB "
        f"(+{growth:.0f} MB)"
    )
    verdict = "met" if growth <= 0.1 * statistics.mean(first) else "MISSED"
    return [
        f"- memory flat over the soak (second-half mean within 10% of the first half's): "
        f"{growth:+.0f} MB: {verdict}"
    ]
