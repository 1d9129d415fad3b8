"""The figures the leader exports (streams/figure_gauges.py), from SQLite and PostgreSQL, equal
the month's figures worked out by hand; through the recording rules and the dashboard's own
queries (promtool), the bars a supervisor reads equal them too."""

from __future__ import annotations

import subprocess
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY
from sqlalchemy.engine import Engine

from tests.integration import figures_month as month
from tests.monitoring.support import RULES_DIR, dashboard, require_binary, substitute
from workorder_pipeline.schemas.figures import ScoreWeights
from workorder_pipeline.services.figure_snapshots import FigureSnapshots
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.figures_read import FigureFacts
from workorder_pipeline.streams.figure_gauges import FigureCollector

pytestmark = pytest.mark.integration

Key = tuple[str, str, str]
DECEMBER_END = month.NOVEMBER_END + timedelta(days=31)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    migrate(database_url)
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def exported(collector: FigureCollector, period: str) -> dict[Key, tuple[int, int]]:
    parts: dict[Key, list[int]] = defaultdict(lambda: [0, 0])
    for family in collector.collect():
        for sample in family.samples:
            if family.name not in ("wo_figure_numerator", "wo_figure_denominator"):
                continue
            labels = sample.labels
            if labels["period"] != period:
                continue
            index = 0 if family.name == "wo_figure_numerator" else 1
            parts[labels["unit"], labels["kind"], labels["figure"]][index] = int(sample.value)
    return {key: (num, den) for key, (num, den) in parts.items()}


def leader(engine: Engine, now: datetime = month.NOW) -> FigureCollector:
    return FigureCollector(snapshots(engine, now), lambda: True)


def snapshots(engine: Engine, now: datetime = month.NOW) -> FigureSnapshots:
    return FigureSnapshots(FigureFacts(engine), ScoreWeights(), clock=lambda: now)


def test_the_leader_exports_the_databases_figures_of_last_month_and_this_month(engine: Engine) -> None:
    stories = month.generate(300, seed=7)
    month.write(engine, stories)
    collector = leader(engine)
    assert exported(collector, "last_month") == month.expected(stories)
    this_month = month.expected(stories, month.NOVEMBER_END, DECEMBER_END)
    assert this_month and exported(collector, "this_month") == this_month
    scores = next(f for f in collector.collect() if f.name == "wo_figure_score").samples
    assert {s.labels["unit"] for s in scores if s.labels["period"] == "last_month"} >= set(month.UNITS)
    assert all(0 <= s.value <= 100 for s in scores)


def test_a_worker_that_is_not_the_leader_exports_no_figures(engine: Engine) -> None:
    month.write(engine, month.generate(20, seed=3))
    follower = FigureCollector(snapshots(engine), lambda: False)
    assert [f.samples for f in follower.collect()] == []


def test_a_database_error_leaves_the_figures_out_and_is_counted() -> None:
    labels = {"task": "figure_gauges", "on": "database"}
    before = REGISTRY.get_sample_value("wo_worker_retries_total", labels) or 0.0
    nowhere = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")  # nothing listens
    collector = FigureCollector(snapshots(nowhere), lambda: True)
    assert list(collector.collect()) == []
    assert (REGISTRY.get_sample_value("wo_worker_retries_total", labels) or 0.0) > before


def test_the_dashboards_bars_equal_the_databases_figures_for_the_month(
    engine: Engine, tmp_path: Path
) -> None:
    promtool = require_binary("promtool")
    stories = month.generate(300, seed=11)
    month.write(engine, stories)
    hand = month.expected(stories)
    per_unit: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for (unit, _kind, figure), (num, den) in hand.items():
        per_unit[unit, figure][0] += num
        per_unit[unit, figure][1] += den
    series = []
    for family in leader(engine).collect():
        if family.name in ("wo_figure_numerator", "wo_figure_denominator"):
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                series.append(
                    {"series": f'{family.name}{{instance="w1",{labels}}}', "values": f"{s.value:g}x5"}
                )
    panels = {str(p["title"]): p for p in dashboard()["panels"]}
    tests = []
    for figure in month.FIGURES:
        panel = next(p for title, p in panels.items() if title.startswith(f"{_TITLES[figure]} ("))
        expr = substitute(str(panel["targets"][1]["expr"]), {"unit": ".*", "kind": ".*"})  # last month
        samples = [
            {"labels": f'{{unit="{unit}"}}', "value": num / den}
            for (unit, f), (num, den) in sorted(per_unit.items())
            if f == figure and den > 0  # nothing judged: no bar
        ]
        assert samples or figure == "satisfied"
        tests.append({"expr": expr, "eval_time": "4m", "exp_samples": samples})
    document = {
        "rule_files": [str(RULES_DIR / "workorders.yml")],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": tests}],
    }
    path = tmp_path / "figures_from_database_test.yml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    done = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, (done.stdout + done.stderr).decode(errors="replace")


_TITLES = {
    "accepted_on_time": "Accepted on time",
    "closed": "Closed",
    "closed_on_time": "Closed on time",
    "satisfied": "Satisfied",
    "reworked": "Sent back for rework",
    "returned": "Returned",
    "extended": "Extended",
}
