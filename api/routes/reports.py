"""``GET /reports``: the monthly analysis reports (研判报告) kept; ``GET /reports/monthly/{month}``:
one, as PDF, HTML or Excel. For the command center and supervisors."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel

from workorder_pipeline.api.auth import Principal
from workorder_pipeline.api.deps import Api, Caller, Parts
from workorder_pipeline.services.report_archive import MonthlyReports, MonthRefused, report_period
from workorder_pipeline.services.report_formats.documents import ReportFormat

router = APIRouter()

#: Each format's media type (the console serves the same files).
MEDIA = {
    ReportFormat.pdf: "application/pdf",
    ReportFormat.html: "text/html; charset=utf-8",
    ReportFormat.xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


class KeptReportOut(BaseModel):
    month: str
    format: ReportFormat
    size: int
    made_at: datetime
    url: str


def _reports(caller: Principal, api: Parts) -> MonthlyReports:
    if not caller.may_read_reports:
        raise HTTPException(403, "月度报告仅供指挥中心和督查查看")
    if api.reports is None:
        raise HTTPException(404, "本接口不提供月度报告")
    return api.reports


@router.get(
    "/reports",
    response_model=list[KeptReportOut],
    responses={403: {"description": "A unit's token"}, 404: {"description": "No reports served here"}},
)
def kept_reports(caller: Caller, api: Api) -> list[KeptReportOut]:
    """The reports the leader worker made and kept, newest month first."""
    return [
        KeptReportOut(
            month=r.month,
            format=r.format,
            size=r.size,
            made_at=r.made_at,
            url=f"/reports/monthly/{r.month}?format={r.format.value}",
        )
        for r in _reports(caller, api).kept()
    ]


@router.get(
    "/reports/monthly/{month}",
    response_class=Response,
    responses={
        200: {"content": {media: {} for media in MEDIA.values()}, "description": "The report"},
        403: {"description": "A unit's token"},
        404: {"description": "No reports served here"},
        422: {
            "description": "Not a month (YYYY-MM, ASCII digits, 2000-01 to this month: detail.code "
            "not_a_month, too_early, in_future) or not a format"
        },
    },
)
def monthly(
    month: str,
    caller: Caller,
    api: Api,
    format: Annotated[ReportFormat, Query(description="pdf, html or xlsx")] = ReportFormat.pdf,
) -> Response:
    """The kept report of the month (China time), or one made now when none is kept (a month
    still running: as it stands)."""
    reports = _reports(caller, api)  # rights first: a unit learns nothing of the month's checks
    try:
        period = report_period(month, api.clock())
    except MonthRefused as exc:
        # What was given is not quoted back: it may be 10,000 characters or hold a NUL.
        raise HTTPException(422, {"code": exc.problem.value, "message": exc.zh}) from None
    content = reports.document(period.label, format, api.clock())
    name = f"report-{period.label}.{format.value}"
    return Response(
        content, media_type=MEDIA[format], headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
