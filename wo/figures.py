"""``wo figures``: the figures of a month per unit, read from the database, as a table in Chinese."""

from __future__ import annotations

import argparse
import sys
import unicodedata
from datetime import datetime
from typing import Any

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.times import for_people
from workorder_pipeline.services.clock import utc_now
from workorder_pipeline.services.figures import (
    ALL_UNITS,
    Figure,
    Period,
    Rate,
    UnitFigures,
    figures_for_period,
    period_named,
)

SCORE_ZH = "评分"
ALL_UNITS_ZH = "全部单位"
KINDS_ZH = {
    SignalKind.vehicle_alarm: "车辆动态监控报警",
    SignalKind.suspect: "非法营运嫌疑",
    SignalKind.checkin_failure: "平台查岗未响应",
    SignalKind.complaint: "投诉举报",
}


def add_commands(commands: Any) -> None:
    figures = commands.add_parser(
        "figures", help="按单位列出一个月的考核指标（按时签收率、办结率、满意率等），读自数据库"
    )
    figures.add_argument(
        "--month", default="this_month", help="YYYY-MM（中国时间的自然月），或 this_month（默认）、last_month"
    )
    figures.add_argument("--kinds", action="store_true", help="每个单位再按工单类型分行")
    figures.set_defaults(command=_figures)


def _figures(settings: Settings, args: argparse.Namespace) -> int:
    from workorder_pipeline.services.policy_files import load_policy
    from workorder_pipeline.storage.database import create_engine
    from workorder_pipeline.storage.figures_read import FigureFacts

    now = utc_now()
    try:
        period = period_named(args.month, now)
    except ValueError:
        print(
            f"wo figures: 月份 {args.month!r} 无效：请写 YYYY-MM、this_month 或 last_month", file=sys.stderr
        )
        return 2
    weights = load_policy(settings.policy_dir).figures.score
    engine = create_engine(settings.database_url)
    try:
        rows = figures_for_period(FigureFacts(engine), period, weights, now)
    finally:
        engine.dispose()
    print(table(rows, period, now, kinds=args.kinds))
    return 0


def table(rows: list[UnitFigures], period: Period, now: datetime, kinds: bool = False) -> str:
    """The month's figures, one line per unit (and kind), the total first."""
    title = (
        f"{period.label} 考核指标：{for_people(period.start)} 至 {for_people(period.end)} 之前登记的工单，"
        f"按现在承办的单位统计（统计时间 {for_people(now)}）"
    )
    if not rows:
        return f"{title}\n这段时间没有登记的工单。"
    header = ["单位", "类型", *(figure.label_zh for figure in Figure), SCORE_ZH]
    lines = [header]
    for row in rows:
        if row.kind is not None and not kinds:
            continue
        unit = ALL_UNITS_ZH if row.unit == ALL_UNITS else row.unit
        score = "—" if row.score is None else f"{row.score:.1f}"
        kind = "全部" if row.kind is None else KINDS_ZH[row.kind]
        lines.append([unit, kind, *(_cell(row.rates[figure]) for figure in Figure), score])
    widths = [max(_width(line[i]) for line in lines) for i in range(len(header))]
    rendered = [
        "  ".join(_pad(cell, width) for cell, width in zip(line, widths, strict=True)) for line in lines
    ]
    note = "比率后括号内为 分子/分母；“—” 表示没有可评判的工单（分母为 0）。"
    return "\n".join([title, *rendered, note])


def _cell(rate: Rate) -> str:
    value = rate.value
    if value is None:
        return "—"
    return f"{value:.1%} ({rate.numerator}/{rate.denominator})"


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))
