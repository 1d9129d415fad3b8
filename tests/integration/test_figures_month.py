"""The figures of a generated month, read from SQLite and PostgreSQL, against the figures
worked out by hand from the same stories (tests/integration/figures_month.py)."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine

from tests.integration import figures_month as month
from workorder_pipeline.processors.figures import ALL_UNITS, Figure, Period, ScoreWeights, UnitFigures
from workorder_pipeline.services.figures import figures_for_period
from workorder_pipeline.storage.figures_read import FigureFacts
from workorder_pipeline.wo.cli import main

pytestmark = pytest.mark.integration

Key = tuple[str, str, str]


def answered(rows: list[UnitFigures]) -> dict[Key, tuple[int, int]]:
    """The service's per unit and kind rows as {(unit, kind, figure): (num, den)}."""
    return {
        (row.unit, row.kind.value, figure.value): (rate.numerator, rate.denominator)
        for row in rows
        if row.unit != ALL_UNITS and row.kind is not None
        for figure, rate in row.rates.items()
    }


def summed(pairs: dict[Key, tuple[int, int]], by_unit: bool) -> dict[tuple[str, str], tuple[int, int]]:
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for (unit, kind, figure), (num, den) in pairs.items():
        total = totals[(unit if by_unit else kind), figure]
        total[0] += num
        total[1] += den
    return {key: (num, den) for key, (num, den) in totals.items()}


def test_a_generated_month_reads_as_worked_out_by_hand(engine: Engine) -> None:
    stories = month.generate(360, seed=18)
    month.write(engine, stories)
    hand = month.expected(stories)
    rows = figures_for_period(FigureFacts(engine), Period.month(2026, 11), ScoreWeights(), month.NOW)

    assert answered(rows) == hand
    per_unit = {
        (r.unit, f.value): (x.numerator, x.denominator)
        for r in rows
        if r.kind is None
        for f, x in r.rates.items()
    }
    for (unit, figure), pair in summed(hand, by_unit=True).items():
        assert per_unit[unit, figure] == pair
    total = {f.value: (x.numerator, x.denominator) for f, x in rows[0].rates.items()}
    assert rows[0].unit == ALL_UNITS and rows[0].kind is None
    for figure in month.FIGURES:
        assert total[figure] == (
            sum(num for (_, _, f), (num, _) in hand.items() if f == figure),
            sum(den for (_, _, f), (_, den) in hand.items() if f == figure),
        )
    # The month is a real one: every outcome occurs in it.
    assert all(total[f][0] > 0 and total[f][0] < total[f][1] for f in month.FIGURES), total
    assert any(unit == "command-center" for unit, _, _ in hand)  # returned, waiting to be re-routed


def test_the_months_edges_are_china_time(engine: Engine) -> None:
    stories = month.generate(4, seed=1)  # created at both edges of November, inside and out
    month.write(engine, stories)
    rows = figures_for_period(FigureFacts(engine), Period.month(2026, 11), ScoreWeights(), month.NOW)
    closed = next(rate for figure, rate in rows[0].rates.items() if figure.value == "closed")
    assert closed.denominator == 2  # 2026-11-01 00:00:00+08:00 and 2026-11-30 23:59:59+08:00


def test_an_empty_month_has_no_rows(engine: Engine) -> None:
    assert figures_for_period(FigureFacts(engine), Period.month(2026, 11), ScoreWeights(), month.NOW) == []


def test_wo_figures_prints_the_months_table_in_chinese(
    engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stories = month.generate(120, seed=5)
    month.write(engine, stories)
    monkeypatch.setenv("WO_DATABASE_URL", database_url)
    assert main(["figures", "--month", "2026-11"]) == 0
    out = capsys.readouterr().out
    assert "2026-11 考核指标：2026-11-01 00:00:00+08:00 至 2026-12-01 00:00:00+08:00" in out
    header = next(line for line in out.splitlines() if line.startswith("单位"))
    assert header.split() == ["单位", "类型", *(f.label_zh for f in Figure), "评分"]
    # 办结率 (the fourth column) per unit, as worked out by hand (it does not depend on the time).
    closed = summed(month.expected(stories), by_unit=True)
    for unit in month.UNITS:
        num, den = closed[unit, "closed"]
        line = next(line for line in out.splitlines() if line.startswith(unit + " "))
        cells = re.split(r"\s{2,}", line.strip())  # columns are two spaces apart at least
        assert cells[:2] == [unit, "全部"] and cells[3] == f"{num / den:.1%} ({num}/{den})", line
    assert next(line for line in out.splitlines() if line.startswith("全部单位"))


def test_wo_figures_refuses_a_month_that_is_not_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["figures", "--month", "2026-13"]) == 2
    assert "2026-13" in capsys.readouterr().err


def test_only_the_holders_acceptance_and_known_callbacks_count(engine: Engine) -> None:
    created = month.NOVEMBER_START + timedelta(days=3)
    twice = month.Story("WO-TWICE", "squad-2", "suspect", created, status="dispatched")
    twice.accept_due_at, twice.column_accepted_at = (
        created + timedelta(hours=12),
        created + timedelta(hours=1),
    )
    twice.event(created + timedelta(hours=1), "accepted")
    twice.event(created + timedelta(hours=2), "reassigned", to="squad-3")
    twice.event(created + timedelta(hours=3), "accepted")  # squad-3's, on time
    twice.event(created + timedelta(hours=4), "reassigned", to="squad-2")  # squad-2 never accepts
    complaint = month.Story("WO-CALLBACK", "squad-1", "complaint", created, status="closed", closed=True)
    complaint.closed_at, complaint.closed_on_time = created + timedelta(days=2), True
    complaint.event(created + timedelta(days=1), "closed", callback="satisfied")
    complaint.event(created + timedelta(days=1, hours=1), "reopened", note_given=False)
    complaint.event(created + timedelta(days=2), "closed", callback="very_happy")  # no such result
    month.write(engine, [twice, complaint])

    rows = figures_for_period(FigureFacts(engine), Period.month(2026, 11), ScoreWeights(), month.NOW)

    pairs = answered(rows)
    assert pairs["squad-2", "suspect", "accepted_on_time"] == (0, 1)  # its deadline passed unaccepted
    assert pairs["squad-1", "complaint", "satisfied"] == (1, 1)  # the last callback it understood
