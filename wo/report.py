"""``wo report monthly YYYY-MM``: the monthly analysis report (研判报告) from the database."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.schemas.policy import Policy
from workorder_pipeline.services.clock import utc_now
from workorder_pipeline.services.policy_files import PolicyError, load_policy
from workorder_pipeline.wo.errors import EXIT_USAGE

FORMATS = ("html", "pdf", "xlsx")


def add_commands(commands: Any) -> None:
    report = commands.add_parser("report", help="the monthly analysis report (研判报告)")
    sub = report.add_subparsers(required=True, metavar="REPORT_COMMAND")
    monthly = sub.add_parser("monthly", help="a calendar month (China time): HTML, PDF and Excel")
    monthly.add_argument("month", help="YYYY-MM, e.g. 2026-11")
    monthly.add_argument(
        "--format", choices=FORMATS, action="append", help="one format (repeatable); default: all three"
    )
    monthly.add_argument("--out", type=Path, default=Path("."), help="directory to write into (default: .)")
    monthly.set_defaults(command=_monthly)


def _monthly(settings: Settings, args: argparse.Namespace) -> int:
    from workorder_pipeline.services.report_archive import MonthRefused, report_period

    try:
        period = report_period(args.month, utc_now())
    except MonthRefused as exc:
        print(f"wo report: 月份无效：{_echo(args.month)}：{exc.zh}", file=sys.stderr)
        return EXIT_USAGE
    try:
        policy = load_policy(settings.policy_dir)
    except PolicyError as exc:
        print(f"wo report: 策略文件有误：{exc}", file=sys.stderr)
        return 1
    return write_reports(
        settings.database_url,
        period.label,
        policy,
        args.format or FORMATS,
        args.out,
        utc_now(),
    )


def _echo(text: str) -> str:
    """What was given, as much as a line can show: 16 characters, control characters as "?"."""
    shown = "".join(c if c.isprintable() else "?" for c in text[:16])
    return f"“{shown}…”" if len(text) > 16 else f"“{shown}”"


def write_reports(
    database_url: str,
    month: str,
    policy: Policy,
    formats: Any,
    out: Path,
    now: datetime,
) -> int:
    """The report of ``month`` by the policy's score weights, units shown by their names."""
    from workorder_pipeline.processors.figures import Period
    from workorder_pipeline.services.report import figures_from, monthly_report
    from workorder_pipeline.services.report_formats.documents import ReportFormat, file_name, render
    from workorder_pipeline.storage.database import create_engine
    from workorder_pipeline.storage.figures_read import FigureFacts
    from workorder_pipeline.storage.report_store import ReportStore

    year, number = (int(part) for part in month.split("-"))
    engine = create_engine(database_url)
    try:
        report = monthly_report(
            ReportStore(engine),
            Period.month(year, number),
            now,
            figures_from(FigureFacts(engine), policy.figures.score),
            unit_names=policy.units.names(),
        )
    finally:
        engine.dispose()
    out.mkdir(parents=True, exist_ok=True)
    for name in formats:
        fmt = ReportFormat(name)
        path = out / file_name(report, fmt)
        path.write_bytes(render(report, fmt))
        print(f"已生成 {path}")
    if report.empty:
        print(f"注意：{month} 没有任何信号、工单或死信。")
    return 0
