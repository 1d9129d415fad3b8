"""Last month's report made by the leader and kept (once, whole), listed and downloaded
through the API by the command center and supervisors, never by a squad; ``wo report``."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy.engine import Engine

from tests.fakes import FakeWorker, InMemoryApiStore
from tests.report_month import UNIT_NAMES, china_month, generate, hostile_months, write
from workorder_pipeline.api.app import create_app
from workorder_pipeline.api.auth import Role, TokenEntry, Tokens, hash_token, new_token
from workorder_pipeline.schemas.figures import ScoreWeights
from workorder_pipeline.services.report_archive import MonthlyReports
from workorder_pipeline.storage.figures_read import FigureFacts
from workorder_pipeline.storage.report_store import ReportStore
from workorder_pipeline.wo.cli import main

#: Two hours into December, China time.
EARLY_DECEMBER = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)


def archive(engine: Engine, directory: Path) -> MonthlyReports:
    return MonthlyReports(ReportStore(engine), FigureFacts(engine), ScoreWeights(), directory, UNIT_NAMES)


def test_the_leader_keeps_last_month_s_report_in_every_format_once(engine: Engine, tmp_path: Path) -> None:
    write(engine, generate(*china_month(2026, 11), 60, seed=5))
    reports = archive(engine, tmp_path / "reports")
    written = reports.keep_last_month(EARLY_DECEMBER)
    assert sorted(p.name for p in written) == [
        "report-2026-11.html",
        "report-2026-11.pdf",
        "report-2026-11.xlsx",
    ]
    before = {p.name: p.read_bytes() for p in written}
    assert reports.keep_last_month(EARLY_DECEMBER + timedelta(hours=1)) == []  # kept: not made again
    assert {p.name: p.read_bytes() for p in written} == before
    assert not list((tmp_path / "reports").glob(".making-*"))
    (tmp_path / "reports" / "report-2026-11.pdf").unlink()  # lost: made again, that one only
    assert [p.name for p in reports.keep_last_month(EARLY_DECEMBER)] == ["report-2026-11.pdf"]
    assert [(r.month, r.format.value) for r in reports.kept()] == [
        ("2026-11", "xlsx"),
        ("2026-11", "pdf"),
        ("2026-11", "html"),
    ]
    book = load_workbook(io.BytesIO((tmp_path / "reports" / "report-2026-11.xlsx").read_bytes()))
    rows = list(book["信号与工单"].iter_rows(values_only=True))[1:5]
    assert sum(int(row[3]) for row in rows) == 60


def client(reports: MonthlyReports) -> tuple[TestClient, dict[str, dict[str, str]]]:
    tokens = {who: new_token() for who in ("squad-1", "command_center", "supervisor")}
    roles = {"command_center": Role.command_center, "supervisor": Role.supervisor}
    entries = [
        TokenEntry(
            name=who,
            role=roles.get(who, Role.unit),
            unit=None if who in roles else who,
            sha256=hash_token(token),
            expires_at=datetime(2100, 1, 1, tzinfo=UTC),
        )
        for who, token in tokens.items()
    ]
    store = InMemoryApiStore()
    app = create_app(
        store,
        Tokens(entries),
        FakeWorker(store, lambda _: None),
        clock=lambda: EARLY_DECEMBER,
        reports=reports,
    )
    headers = {who: {"Authorization": f"Bearer {token}"} for who, token in tokens.items()}
    return TestClient(app), headers


def test_kept_reports_are_listed_and_downloaded_by_supervisors_and_not_by_squads(
    engine: Engine, tmp_path: Path
) -> None:
    write(engine, generate(*china_month(2026, 11), 30, seed=6))
    reports = archive(engine, tmp_path)
    reports.keep_last_month(EARLY_DECEMBER)
    api, headers = client(reports)
    listed = api.get("/reports", headers=headers["supervisor"])
    assert listed.status_code == 200
    assert {(r["month"], r["format"]) for r in listed.json()} == {
        ("2026-11", f) for f in ("pdf", "html", "xlsx")
    }
    pdf = api.get("/reports/monthly/2026-11", params={"format": "pdf"}, headers=headers["command_center"])
    assert pdf.status_code == 200 and pdf.content == (tmp_path / "report-2026-11.pdf").read_bytes()
    assert pdf.headers["content-type"] == "application/pdf"
    # A month not kept is made on demand (the running month: as it stands).
    html = api.get("/reports/monthly/2026-12", params={"format": "html"}, headers=headers["supervisor"])
    assert html.status_code == 200 and "2026年12月 工单研判报告" in html.text
    for path in ("/reports", "/reports/monthly/2026-11"):
        assert api.get(path, headers=headers["squad-1"]).status_code == 403
    for month in ("../../etc/passwd", "2026-13", "26-11", "2026-11.pdf"):
        answer = api.get(f"/reports/monthly/{month}", headers=headers["supervisor"])
        assert answer.status_code in (404, 422), month
    assert (
        api.get(
            "/reports/monthly/2026-11", params={"format": "docx"}, headers=headers["supervisor"]
        ).status_code
        == 422
    )


def test_wo_report_monthly_writes_the_formats_asked_for(
    engine: Engine,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write(engine, generate(*china_month(2026, 11), 20, seed=8))
    monkeypatch.setenv("WO_DATABASE_URL", database_url)
    monkeypatch.setenv("WO_POLICY_DIR", str(Path(__file__).resolve().parents[2] / "policy"))
    out = tmp_path / "out"
    assert (
        main(["report", "monthly", "2026-11", "--format", "xlsx", "--format", "html", "--out", str(out)]) == 0
    )
    assert sorted(p.name for p in out.iterdir()) == ["report-2026-11.html", "report-2026-11.xlsx"]
    assert "已生成" in capsys.readouterr().out
    assert main(["report", "monthly", "2026-11-01", "--out", str(tmp_path)]) == 2
    assert "月份无效" in capsys.readouterr().err


def _files(directory: Path) -> set[Path]:
    return set(directory.rglob("*")) if directory.exists() else set()


def test_no_hostile_month_makes_the_api_fail_or_write_a_file(engine: Engine, tmp_path: Path) -> None:
    reports_dir = tmp_path / "reports"
    reports = archive(engine, reports_dir)
    reports.keep_last_month(EARLY_DECEMBER)
    kept, elsewhere = _files(reports_dir), _files(tmp_path) - _files(reports_dir)
    api, headers = client(reports)
    for month in hostile_months(EARLY_DECEMBER):
        for fmt in ("pdf", "xlsx"):
            answer = api.get(
                f"/reports/monthly/{quote(month, safe='')}",
                params={"format": fmt},
                headers=headers["supervisor"],
            )
            assert answer.status_code in (404, 422), (month[:20], answer.status_code)
            body = answer.json()  # structured, never a page or a traceback
            assert "detail" in body and "Traceback" not in answer.text
            if isinstance(body["detail"], dict):  # the report's refusal
                assert answer.status_code == 422
                assert body["detail"]["code"] in ("not_a_month", "too_early", "in_future"), month[:20]
            elif answer.status_code == 422:  # refused before routing (a NUL in the URL)
                assert all("type" in problem for problem in body["detail"]), body
            assert len(answer.text) < 400, "what was given is not quoted back"
    assert _files(reports_dir) == kept and _files(tmp_path) - _files(reports_dir) == elsewhere
    # The month still running is made on demand; the one after it is refused as to come.
    assert api.get("/reports/monthly/2026-12", headers=headers["supervisor"]).status_code == 200
    refused = api.get("/reports/monthly/2027-01", headers=headers["supervisor"])
    assert refused.status_code == 422 and refused.json()["detail"]["code"] == "in_future"


def test_wo_report_refuses_every_hostile_month_in_chinese_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused before the database is opened (none is reachable here) and before a path is made."""
    monkeypatch.setenv("WO_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:9/none")
    monkeypatch.setenv("WO_POLICY_DIR", str(Path(__file__).resolve().parents[2] / "policy"))
    monkeypatch.chdir(tmp_path)
    for month in hostile_months(datetime.now(UTC)):
        assert main(["report", "monthly", month, "--out", str(tmp_path / "out")]) == 2, month[:20]
        out, err = capsys.readouterr()
        assert out == "" and err.startswith("wo report: 月份无效：") and err.count("\n") == 1, month[:20]
        assert any(zh in err for zh in ("月份应为 YYYY-MM", "2000 年 1 月及以后", "尚未到来")), err
        assert "Traceback" not in err and "\x00" not in err and len(err) < 200
    assert list(tmp_path.iterdir()) == []
