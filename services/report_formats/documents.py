"""The report as HTML (Jinja2, autoescaped), PDF (WeasyPrint, from that HTML) and an Excel
workbook (openpyxl, one sheet per table)."""

from __future__ import annotations

import base64
import io
import logging
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import jinja2
from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from workorder_pipeline.schemas.report import MonthlyReport
from workorder_pipeline.schemas.times import for_people
from workorder_pipeline.services.report_formats.charts import Chart, report_charts
from workorder_pipeline.services.report_formats.tables import Kind, Table, report_tables, show

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,  # enterprise names and places come from publishers
    undefined=jinja2.StrictUndefined,
)


class ReportFormat(StrEnum):
    html = "html"
    pdf = "pdf"
    xlsx = "xlsx"


@dataclass(frozen=True, slots=True)
class _Cell:
    text: str
    number: bool


def title(report: MonthlyReport) -> str:
    year, month = report.month.split("-")
    return f"{year}年{int(month)}月 工单研判报告"


def file_name(report: MonthlyReport, fmt: ReportFormat) -> str:
    return f"report-{report.month}.{fmt.value}"


def html(report: MonthlyReport, charts: list[Chart] | None = None) -> str:
    tables = report_tables(report)
    shown = charts if charts is not None else report_charts(report)
    return _TEMPLATES.get_template("monthly.html.j2").render(
        title=title(report),
        start=for_people(report.start),
        end=for_people(report.end),
        generated=for_people(report.generated_at),
        empty=report.empty,
        charts=[{"title": c.title, "data": base64.b64encode(c.png).decode()} for c in shown],
        tables=[_shown(table) for table in tables],
    )


def _shown(table: Table) -> dict[str, object]:
    rows = [
        [_Cell(show(cell, kind), kind is not Kind.text) for cell, kind in zip(row, table.kinds, strict=True)]
        for row in table.rows
    ]
    return {
        "section": table.section,
        "title": table.title,
        "headers": table.headers,
        "widths": _widths(table.kinds),
        "rows": rows,
        "note": table.note,
        "empty": table.empty,
    }


def _widths(kinds: list[Kind]) -> list[float]:
    """Each column's share of the table's width in percent: text (codes, names, times) twice
    a number's, so that an 18-character enterprise code keeps to one line."""
    weights = [2 if kind is Kind.text else 1 for kind in kinds]
    return [round(100 * weight / sum(weights), 2) for weight in weights]


def pdf(report: MonthlyReport) -> bytes:
    # Imported here: WeasyPrint loads Pango at import, which only the PDF needs.
    from weasyprint import HTML

    for name in ("weasyprint", "fontTools"):  # a line per layout step and per font subset otherwise
        logging.getLogger(name).setLevel(logging.WARNING)

    rendered: bytes = HTML(string=html(report)).write_pdf()
    return rendered


_NUMBER_FORMATS = {Kind.percent: "0.0%", Kind.hours: "0.0", Kind.score: "0.00", Kind.integer: "0"}


def xlsx(report: MonthlyReport) -> bytes:
    """One sheet per table, a first sheet saying what the workbook is; numbers stay numbers."""
    book = Workbook()
    about = book.active
    assert about is not None
    about.title = "说明"
    about.append([title(report)])
    about.append(["统计期间", f"{for_people(report.start)} 至 {for_people(report.end)}（不含）"])
    about.append(["生成时间", for_people(report.generated_at)])
    about.append(["说明", "所有时间为北京时间；不含投诉人的姓名、电话等个人信息。"])
    if report.empty:
        about.append(["本月", "本月没有任何信号、工单或死信，各项统计均为零。"])
    for table in report_tables(report):
        sheet = book.create_sheet(table.sheet)
        sheet.append(table.headers)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in table.rows:
            sheet.append(row)
        for index, kind in enumerate(table.kinds, start=1):
            letter = get_column_letter(index)
            sheet.column_dimensions[letter].width = 14 if kind is not Kind.text else 24
            if kind in _NUMBER_FORMATS:
                for cells in sheet.iter_rows(min_row=2, min_col=index, max_col=index):
                    cells[0].number_format = _NUMBER_FORMATS[kind]
        if table.note:
            sheet.append([])
            sheet.append([table.note])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def render(report: MonthlyReport, fmt: ReportFormat) -> bytes:
    if fmt is ReportFormat.html:
        return html(report).encode()
    if fmt is ReportFormat.pdf:
        return pdf(report)
    return xlsx(report)
