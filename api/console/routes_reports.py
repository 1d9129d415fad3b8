"""The monthly analysis reports (研判报告) the leader worker keeps (services/report_archive.py),
listed with a download link per format, for the command center and supervisors: the API's
``GET /reports`` and ``/reports/monthly/{month}`` for a signed-in officer."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.convertors import Convertor, register_url_convertor

from workorder_pipeline.api.console.render import page
from workorder_pipeline.api.console.session import ConsoleError, Parts, Reader, SignedInOfficer
from workorder_pipeline.api.deps import Api
from workorder_pipeline.api.routes.reports import MEDIA
from workorder_pipeline.schemas.times import for_people
from workorder_pipeline.services.report_archive import KeptReport, MonthlyReports, MonthRefused, report_period
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


class _AnyText(Convertor[str]):
    """Any text, "/" and line breaks included (``path`` stops at a line break): a month like
    ``..%2F..`` or ``2026-11%0A`` is refused by the page below, in Chinese, instead of
    falling through to the API's English 404."""

    regex = r"[\s\S]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("any_text", _AnyText())


@router.get("/reports/{month:any_text}/{fmt}", include_in_schema=False)
def report_file(parts: Parts, api: Api, who: Reader, month: str, fmt: str) -> Response:
    """The kept report (or, for a month not kept, one made now, as the API answers)."""
    reports = _reports(api, who)
    if fmt not in set(ReportFormat):
        raise ConsoleError(404, "没有这种格式的报告", who)
    try:
        period = report_period(month, parts.clock())
    except MonthRefused as exc:
        raise ConsoleError(404, f"没有这个月份的报告：{exc.zh}", who) from None
    content = reports.document(period.label, ReportFormat(fmt), parts.clock())
    name = f"report-{period.label}.{fmt}"
    return Response(
        content,
        media_type=MEDIA[ReportFormat(fmt)],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
