"""The monthly reports in the console: the command center and supervisors reach the kept
reports in two clicks from their start pages and download each format; squads cannot."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import quote

from tests.console.conftest import ConsoleWorld
from tests.report_month import hostile_months
from workorder_pipeline.processors.figures import Period
from workorder_pipeline.services.report_archive import MonthlyReports

MEDIA = {
    "html": "text/html",
    "pdf": "application/pdf",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
MAGIC = {"html": b"<!doctype html", "pdf": b"%PDF-", "xlsx": b"PK\x03\x04"}


def _reports(console: ConsoleWorld) -> MonthlyReports:
    reports: MonthlyReports = console.api.app.state.parts.reports
    return reports


def test_the_kept_reports_are_two_clicks_from_the_start_pages_with_every_format(
    console: ConsoleWorld,
) -> None:
    now = datetime.now(UTC)
    kept = _reports(console).keep_last_month(now)
    month = Period.last_month(now).label
    year, number = month.split("-")
    for role, start in (("duty", "/console/center"), ("supervisor", "/console/figures")):
        client = console.signed_in(role)
        assert client.get("/console").headers["location"] == start
        assert 'href="/console/reports"' in client.get(start).text  # click one
        listing = client.get("/console/reports").text
        assert f"{year}年{number}月" in listing and "+08:00" in listing
        links = re.findall(rf'href="(/console/reports/{month}/(\w+))"', listing)  # click two
        assert sorted(fmt for _, fmt in links) == ["html", "pdf", "xlsx"], role
        for link, fmt in links:
            answer = client.get(link)
            assert answer.status_code == 200, (role, link)
            assert answer.headers["content-type"].startswith(MEDIA[fmt])
            assert answer.headers["content-disposition"] == f'attachment; filename="report-{month}.{fmt}"'
            assert answer.content.lower().startswith(MAGIC[fmt].lower())
            assert answer.content == next(p for p in kept if p.suffix == f".{fmt}").read_bytes()


def test_a_squad_neither_sees_nor_downloads_the_reports(console: ConsoleWorld) -> None:
    month = Period.last_month(datetime.now(UTC)).label
    _reports(console).keep_last_month(datetime.now(UTC))
    squad = console.signed_in("squad-1")
    assert 'href="/console/reports"' not in squad.get("/console/orders").text
    for url in ("/console/reports", f"/console/reports/{month}/pdf"):
        answer = squad.get(url)
        assert answer.status_code == 403 and "月度报告仅供指挥中心和督查查看" in answer.text
        assert not answer.content.startswith(b"%PDF")


def test_no_kept_report_yet_says_when_one_comes(console: ConsoleWorld) -> None:
    listing = console.signed_in("supervisor").get("/console/reports").text
    assert "还没有保存的报告" in listing and "/console/reports/" not in listing.replace(
        'href="/console/reports"', ""
    )


def test_a_hostile_month_in_the_link_is_a_chinese_page_and_writes_nothing(console: ConsoleWorld) -> None:
    reports = _reports(console)
    reports.keep_last_month(datetime.now(UTC))
    directory = reports.directory
    before = sorted(directory.rglob("*"))
    client = console.signed_in("supervisor")
    for month in hostile_months(datetime.now(UTC)):
        answer = client.get(f"/console/reports/{quote(month, safe='')}/pdf")
        assert answer.status_code in (404, 422), (month[:20], answer.status_code)
        assert answer.headers["content-type"].startswith("text/html"), month[:20]
        assert "Traceback" not in answer.text and not answer.content.startswith(b"%PDF")
        expected = "链接中含有不允许的字符" if "\x00" in month else "没有这个月份的报告："
        assert expected in answer.text, (month[:20], answer.text[:300])
        assert "9" * 100 not in answer.text, "what was given is not quoted back"
    assert sorted(directory.rglob("*")) == before
