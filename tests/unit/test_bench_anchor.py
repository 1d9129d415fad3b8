"""The benchmark's Quix Streams anchor rows: read from the anchor's output, ratios in the report."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
if str(BENCH) not in sys.path:  # bench/ is scripts, not a package: benchkit is imported as they do
    sys.path.insert(0, str(BENCH))

from benchkit.anchor import (  # noqa: E402
    ANCHOR_VENV_ENV,
    find_anchor_venv,
    parse_anchor_output,
    run_anchor,
)
from benchkit.common import BenchmarkError, Config  # noqa: E402
from benchkit.results import Results, Row, report  # noqa: E402

# What /work/quix-venv/bin/python ../shared/bench/anchor_quix.py 20000 printed (2026-12-06),
# with the kind of noise a library may add to standard output.
SAMPLE = """\
[2026-12-06 06:01:02,003] [INFO] [quixstreams] : Starting the Application
raw        388,498 msg/s      2.6 us CPU/msg
parse       53,376 msg/s     18.7 us CPU/msg
dedupe       9,433 msg/s    107.0 us CPU/msg
"""


def config(databases: list[str]) -> Config:
    return Config(
        messages=20_000,
        databases=databases,
        loads=[],
        duration_s=1,
        workers=[1, 2],
        partitions=6,
        soak_s=0,
        soak_load=0,
        keep=False,
        fetch_wait_ms=100,
        batch_interval_ms=50,
    )


def test_the_anchors_three_rows_are_read_with_their_rate_and_cpu() -> None:
    rows = parse_anchor_output(SAMPLE)

    assert [(row.what, row.rate, row.cpu_us) for row in rows] == [
        ("Quix anchor: confluent-kafka consume (raw)", 388_498.0, 2.6),
        ("Quix anchor: Quix Streams app, parse only", 53_376.0, 18.7),
        ("Quix anchor: Quix Streams dedupe app", 9_433.0, 107.0),
    ]


def test_a_mode_that_failed_is_a_failed_row_with_its_error_not_a_missing_one() -> None:
    text = "raw        388,498 msg/s      2.6 us CPU/msg\ndedupe FAILED Traceback: RocksDB lock held\n"

    rows = parse_anchor_output(text)

    assert [row.what for row in rows] == [
        "Quix anchor: confluent-kafka consume (raw)",
        "Quix anchor: Quix Streams dedupe app: FAILED",
    ]
    assert rows[1].rate is None
    assert "RocksDB lock held" in rows[1].note


def test_lines_that_only_look_like_rows_are_not_taken_for_figures() -> None:
    text = "dedupe 9,433 msg/s\nrawx 1 msg/s 1.0 us CPU/msg\nparse  n/a msg/s  1.0 us CPU/msg\n"

    assert parse_anchor_output(text) == []


def test_the_venv_given_on_the_command_line_wins_over_the_environment(tmp_path: Path) -> None:
    given, other = tmp_path / "given", tmp_path / "other"
    for venv in (given, other):
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").write_text("")

    assert find_anchor_venv(str(given), {ANCHOR_VENV_ENV: str(other)}).python == given / "bin" / "python"
    assert find_anchor_venv(None, {ANCHOR_VENV_ENV: str(other)}).python == other / "bin" / "python"


def test_without_a_venv_the_anchor_is_skipped_with_the_reason_printed(tmp_path: Path) -> None:
    none = find_anchor_venv(None, {})
    empty = find_anchor_venv(str(tmp_path), {})

    assert none.python is None and "--anchor-venv" in none.reason and ANCHOR_VENV_ENV in none.reason
    assert empty.python is None and str(tmp_path / "bin" / "python") in empty.reason


def test_an_anchor_that_cannot_run_fails_with_its_exit_status_and_error_output(tmp_path: Path) -> None:
    # The project's venv has no quixstreams (nor, today, confluent-kafka) and nothing listens on
    # port 9: either way the anchor exits non-zero without a row.
    with pytest.raises(BenchmarkError, match=r"exited with 1 and 0 rows(.|\n)*Error"):
        run_anchor(Path(sys.executable), 10, "127.0.0.1:9", tmp_path)


def test_the_report_sets_the_pipeline_against_the_quix_dedupe_app_and_2_workers_against_1() -> None:
    results = Results(broker="kafka")
    for row in parse_anchor_output(SAMPLE):
        results.add(row)
    results.add(Row("pipeline: backlog", "postgres", 1, rate=1_886.6))
    results.add(Row("pipeline: backlog", "postgres", 2, rate=3_018.6))

    text, met = report(config(["postgres"]), [("Apache Kafka", results)], ["1.00 1.00 1.00"])

    assert "| Quix anchor: Quix Streams dedupe app | kafka | - | 1 |  | 9,433 |" in text
    assert "- pipeline (postgres, 1 worker) / Quix dedupe app: 0.200" in text
    assert "- pipeline (postgres, 2 workers) / Quix dedupe app: 0.320" in text
    assert "- 2 workers / 1 worker (postgres): 1.60" in text
    assert "- pipeline (postgres, 1 worker) >= 0.5x the Quix dedupe app: 0.20x: MISSED" in text
    assert not met


def test_without_anchor_rows_the_report_has_no_quix_ratio() -> None:
    results = Results(broker="kafka")
    results.add(Row("pipeline: backlog", "postgres", 1, rate=1_886.6))

    text, _ = report(config(["postgres"]), [("Apache Kafka", results)], ["1.00 1.00 1.00"])

    assert "Quix" not in text
