"""The monthly analysis reports (研判报告) the leader worker keeps (services/report_archive.py),
listed with a download link per format, for the command center and supervisors: the API's
``GET /reports`` and ``/reports/monthly/{month}`` for a signed-in officer."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from workorder_pipeline.api.console.render import page
from workorder_pipeline.api.console.session import ConsoleError, Parts, Reader, SignedInOfficer
from workorder_pipeline.api.deps import Api
from workorder_pipeline.api.routes.reports import MEDIA
from workorder_pipeline.schemas.times import for_people
from workorder_pipeline.services.report_archive import KeptReport, MonthlyReports
from workorder_pipeline.services.report_formats.documents import ReportFormat

router = APIRouter(prefix="/console")
#: The formats in the order they are offered, with what a person calls them.
FORMATS = ((ReportFormat.html, "网页"), (ReportFormat.pdf, "PDF"), (ReportFormat.xlsx, "Excel"))


def _reports(api: Api, who: SignedInOfficer) -> MonthlyReports:
    if not who.principal.may_read_reports:
        raise ConsoleError(403, "月度报告仅供指挥中心和督查查看", who)
    if api.reports is None:
        raise ConsoleError(404, "本节点不提供月度报告", who)
    return api.reports


def _months(kept: list[KeptReport]) -> list[dict[str, object]]:
    """One row per month, newest first: its formats kept, when last made (China time)."""
    months: dict[str, list[KeptReport]] = {}
    for report in kept:
        months.setdefault(report.month, []).append(report)
    rows: list[dict[str, object]] = []
    for month, reports in months.items():
        by_format = {r.format: r for r in reports}
        year, number = month.split("-")
        rows.append(
            {
                "month": month,
                "label": f"{year}年{number}月",
                "made": for_people(max(r.made_at for r in reports)),
                "files": [
                    (fmt.value, text, f"{by_format[fmt].size / 1024:.0f} KB")
                    for fmt, text in FORMATS
                    if fmt in by_format
                ],
            }
        )
    return rows


@router.get("/reports", include_in_schema=False)
def reports_page(request: Request, parts: Parts, api: Api, who: Reader) -> Response:
    kept = _reports(api, who).kept()
    return page(request, parts, who, "reports.html", {"months": _months(kept)})


@router.get("/reports/{month}/{fmt}", include_in_schema=False)
def report_file(parts: Parts, api: Api, who: Reader, month: str, fmt: str) -> Response:
    """The kept report (or, for a month not kept, one made now, as the API answers)."""
    reports = _reports(api, who)
    if fmt not in set(ReportFormat):
        raise ConsoleError(404, "没有这种格式的报告", who)
    try:
        content = reports.document(month, ReportFormat(fmt), parts.clock())
    except ValueError:
        raise ConsoleError(404, f"没有 {month} 的报告（月份应为 YYYY-MM）", who) from None
    name = f"report-{month}.{fmt}"
    return Response(
        content,
        media_type=MEDIA[ReportFormat(fmt)],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
