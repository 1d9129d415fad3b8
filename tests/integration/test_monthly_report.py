"""The monthly report of a generated month on both databases: its tables, read back from the
Excel workbook and from the PDF's text, equal the counts the test computes from the generated
data with plain loops; the PDF's pages are rendered to PNG (var/report-artefacts) for a person
to look at; a month with nothing in it still renders, and says so."""

from __future__ import annotations

import io
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy.engine import Engine

from tests.integration import report_expectations as expect
from tests.report_month import COMPLAINANT, UNIT_NAMES, UNITS, china_month, generate, write
from workorder_pipeline.processors.figures import Period
from workorder_pipeline.schemas.figures import ScoreWeights
from workorder_pipeline.schemas.report import MonthlyReport
from workorder_pipeline.services.policy_files import load_policy
from workorder_pipeline.services.report import LISTED, TOP, figures_from, monthly_report
from workorder_pipeline.services.report_formats.documents import ReportFormat, render
from workorder_pipeline.services.report_formats.labels import zh
from workorder_pipeline.storage.figures_read import FigureFacts
from workorder_pipeline.storage.report_store import ReportStore

ROOT = Path(__file__).resolve().parents[2]
ARTEFACTS = ROOT / "var" / "report-artefacts"
NOW = datetime(2026, 12, 10, tzinfo=UTC)
NOVEMBER, OCTOBER, DECEMBER = china_month(2026, 11), china_month(2026, 10), china_month(2026, 12)
PERCENT_SHEETS = {"考核指标": range(2, 9), "上月指标": range(1, 8)}
SCORE_COLUMNS = {"考核指标": (9, 10)}
HOUR_COLUMNS = {"办理时长": range(1, 5)}
Rows = dict[tuple[Any, ...], list[Any]]


def report_of(engine: Engine, year: int = 2026, month: int = 11) -> MonthlyReport:
    facts = figures_from(FigureFacts(engine), ScoreWeights())
    names = load_policy(ROOT / "policy").units.names()
    return monthly_report(ReportStore(engine), Period.month(year, month), NOW, facts, unit_names=names)


def sheet_rows(book: Any, name: str) -> tuple[list[list[Any]], list[str]]:
    """The table's rows (after its header, up to the blank row) and the notes under it."""
    rows = [list(row) for row in book[name].iter_rows(values_only=True)]
    blank = next((i for i, row in enumerate(rows) if all(cell is None for cell in row)), len(rows))
    return rows[1:blank], [str(row[0]) for row in rows[blank + 1 :] if row and row[0]]


def keyed(rows: list[list[Any]], width: int) -> Rows:
    return {tuple(row[:width]): row[width:] for row in rows}


def assert_same(found: Rows, expected: Rows, sheet: str) -> None:
    assert set(found) == set(expected), sheet
    for key, values in expected.items():
        assert found[key] == pytest.approx(values), f"{sheet} {key}"


def assert_top(found: Rows, everything: Rows, sheet: str, rank: int) -> None:
    """The shown rows are the ``TOP`` largest of ``everything`` (column ``rank`` counts), each exact."""
    assert len(found) == min(TOP, len(everything)), sheet
    for key, values in found.items():
        assert values == everything[key], f"{sheet} {key}"
    smallest = min(values[rank] for values in found.values())
    assert all(everything[key][rank] <= smallest for key in set(everything) - set(found)), sheet


def test_a_generated_month_s_report_equals_the_counts_computed_from_its_data(
    engine: Engine, database_url: str
) -> None:
    months = [generate(*OCTOBER, 150, seed=1, prefix="O"), generate(*NOVEMBER, 400, seed=2, prefix="N")]
    months.append(generate(*DECEMBER, 40, seed=3, prefix="D"))
    for month in months:
        write(engine, month)
    orders = [order for month in months for order in month.orders]
    report = report_of(engine)
    book = load_workbook(io.BytesIO(render(report, ReportFormat.xlsx)))
    tables = _check_workbook(book, orders, months)
    pdf = render(report, ReportFormat.pdf)
    text = _pdf_text(pdf)
    for sheet, rows in tables.items():
        for row in rows:
            assert _line_of(text, sheet, row), f"{sheet}: no line of the PDF reads {row}"
    for secret in COMPLAINANT.values():
        assert secret not in text
        assert secret not in render(report, ReportFormat.html).decode()
        assert not any(
            secret in str(cell) for sheet in book for row in sheet.iter_rows(values_only=True) for cell in row
        )
    _check_units(book, text, render(report, ReportFormat.html).decode())
    pages = _pngs(pdf, f"generated-{database_url.split(':')[0].split('+')[0]}")
    assert len(pages) >= 3


def _check_units(book: Any, pdf: list[str], html: str) -> None:
    """Units in the policy by name, never by id; squad-9 (not in it) by its id, marked, with
    the note saying why."""
    cells = [str(cell) for sheet in book for row in sheet.iter_rows(values_only=True) for cell in row]
    text = "\n".join(pdf)
    for unit in UNITS:
        if unit in UNIT_NAMES:
            assert UNIT_NAMES[unit] in cells and UNIT_NAMES[unit] in text and UNIT_NAMES[unit] in html, unit
            assert not any(unit in cell for cell in cells), unit
            assert unit not in text and unit not in html, unit
    assert "squad-9" not in UNIT_NAMES and "squad-9※" in cells and "squad-9※" in text
    assert any("已不在单位配置" in cell for cell in cells) and "已不在单位配置" in text


def _check_workbook(book: Any, orders: list[Any], months: list[Any]) -> dict[str, list[list[Any]]]:
    inflow = expect.inflow(orders, months, NOVEMBER, OCTOBER)
    returns = expect.returns(orders, NOVEMBER, OCTOBER)
    closure = expect.closure(orders, NOVEMBER, OCTOBER, NOW)
    tables: dict[str, list[list[Any]]] = {}
    for sheet, expected in {**inflow, **returns, **closure}.items():
        rows, _notes = sheet_rows(book, sheet)
        width = len(next(iter(expected)))
        assert_same(keyed(rows, width), expected, sheet)
        tables[sheet] = rows
    assert sum(inflow["信号与工单"][k][2] for k in inflow["信号与工单"]) == 400
    for sheet, attribute in (("高频车辆", "plate"), ("高频企业", "enterprise_id")):
        rows, _ = sheet_rows(book, sheet)
        everything = expect.recurrences(orders, NOVEMBER, attribute)
        assert_top(keyed(rows, 1), everything, sheet, rank=len(next(iter(everything.values()))) - 4)
        tables[sheet] = rows
    rows, _ = sheet_rows(book, "投诉类别与地点")
    assert_top(keyed(rows, 3), expect.categories_by_place(orders, NOVEMBER), "投诉类别与地点", rank=0)
    tables["投诉类别与地点"] = rows
    rows, _ = sheet_rows(book, "查岗反复失败")
    assert_same(keyed(rows, 1), expect.checkin_failures(orders, NOVEMBER), "查岗反复失败")
    tables["查岗反复失败"] = rows
    _check_listed(book, "逾期工单", expect.overdue_ids(orders, NOVEMBER))
    escalated = expect.escalated_levels(orders, NOVEMBER)
    rows = _check_listed(book, "督办工单", set(escalated))
    assert {row[0]: row[5] for row in rows} == {row[0]: zh(escalated[row[0]]) for row in rows}
    return tables


def _check_listed(book: Any, sheet: str, expected: set[str]) -> list[list[Any]]:
    rows, notes = sheet_rows(book, sheet)
    assert len(rows) == min(LISTED, len(expected)) and {row[0] for row in rows} <= expected, sheet
    assert notes and f"共 {len(expected)} 件" in notes[0], (sheet, notes)
    return rows


def _pdf_text(pdf: bytes) -> list[str]:
    done = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True)
    return done.stdout.decode().splitlines()


def _shown(sheet: str, column: int, cell: Any) -> str:
    """A cell as the PDF shows it (Excel gives 1.0 back as 1: the column decides)."""
    if cell is None:
        return "—"
    if column in PERCENT_SHEETS.get(sheet, ()):
        return f"{100 * cell:.1f}%"
    if column in SCORE_COLUMNS.get(sheet, ()):
        return f"{cell:.2f}"
    if column in HOUR_COLUMNS.get(sheet, ()):
        return f"{cell:.1f}"
    return str(cell)


def _line_of(text: list[str], sheet: str, row: list[Any]) -> bool:
    pattern = re.compile(r"\s+".join(re.escape(_shown(sheet, i, cell)) for i, cell in enumerate(row)))
    return any(pattern.search(line) for line in text)


def _pngs(pdf: bytes, name: str) -> list[Path]:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    (ARTEFACTS / f"{name}.pdf").write_bytes(pdf)
    for old in ARTEFACTS.glob(f"{name}-*.png"):
        old.unlink()
    subprocess.run(
        ["pdftoppm", "-png", "-r", "80", str(ARTEFACTS / f"{name}.pdf"), str(ARTEFACTS / name)], check=True
    )
    pages = sorted(ARTEFACTS.glob(f"{name}-*.png"))
    assert all(page.stat().st_size > 10_000 for page in pages)
    return pages


def test_a_month_with_nothing_in_it_renders_in_every_format_and_says_so(
    engine: Engine, database_url: str
) -> None:
    report = report_of(engine, 2026, 2)
    assert report.empty
    html = render(report, ReportFormat.html).decode()
    assert "本月没有任何信号、工单或死信" in html
    text = "\n".join(_pdf_text(render(report, ReportFormat.pdf)))
    assert "2026年2月 工单研判报告" in text and "本月没有任何信号、工单或死信" in text
    assert "本月无数据。" in text
    book = load_workbook(io.BytesIO(render(report, ReportFormat.xlsx)))
    assert any("本月没有任何信号" in str(row[1]) for row in book["说明"].iter_rows(values_only=True))
    rows, _ = sheet_rows(book, "信号与工单")
    assert [row[1:] for row in rows] == [[0, 0, 0, 0]] * 4
    _pngs(render(report, ReportFormat.pdf), f"empty-{database_url.split(':')[0].split('+')[0]}")
