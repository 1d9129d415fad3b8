"""bench/memory_soak.py's verdicts from its samples: growth, slope, and a worker that fell behind."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:  # bench/ is scripts, not a package: imported as they run
    sys.path.insert(0, str(BENCH))

from memory_soak import Sample, report, slope_per_minute, summarize  # noqa: E402


def samples(rss: list[float], rate: float, consumed: float, workers: int = 1) -> list[Sample]:
    return [
        Sample(
            10.0 * (i + 1),
            mb,
            (mb / workers,) * workers,
            int(rate * 10 * (i + 1)),
            int(consumed * 10 * (i + 1)),
            "3.00 3.00 3.00",
        )
        for i, mb in enumerate(rss)
    ]


def test_memory_growing_one_mb_every_ten_seconds_is_six_mb_a_minute() -> None:
    assert slope_per_minute([(10.0 * i, 100.0 + i) for i in range(30)]) == 6.0


def test_flat_memory_with_noise_has_halves_alike_and_no_slope() -> None:
    summary = summarize(samples([150, 152, 150, 152, 150, 152, 150, 152], 1000, 1000), 1000)

    assert summary.first_half_mb == summary.second_half_mb == 151
    assert abs(summary.slope_mb_per_min) < 3
    assert summary.kept_up and summary.lag_at_end == 0


def test_a_worker_that_fell_behind_is_named_so_with_a_rate_it_carried() -> None:
    summary = summarize(samples([150 + 5 * i for i in range(12)], 2000, 1500), 2000)
    text = report(samples([150 + 5 * i for i in range(12)], 2000, 1500), summary, 2000, "Apache Kafka")

    assert not summary.kept_up
    assert summary.consumed_per_s == 1500
    assert summary.lag_at_end == 60_000
    assert "did NOT keep up" in text and "not a memory test of steady state" in text
    assert "--rate 1200" in text


def test_two_workers_are_reported_as_their_rss_summed_and_each_at_the_end() -> None:
    two = samples([400, 402, 400, 402], 2000, 2000, workers=2)
    text = report(two, summarize(two, 2000), 2000, "Apache Kafka")

    assert "2 wo run workers (RSS summed)" in text
    assert "each worker's RSS at the end: 201.0, 201.0 MB" in text
    assert "The workers kept up" in text


def test_a_lag_of_a_few_seconds_of_sending_still_counts_as_keeping_up() -> None:
    kept = samples([150] * 6, 1000, 1000)
    last = kept[-1]
    kept[-1] = Sample(last.seconds, last.rss_mb, last.worker_mb, last.sent, last.handled - 4_000, last.load)

    assert summarize(kept, 1000).kept_up
