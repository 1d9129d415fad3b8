"""The report's charts as PNG images (matplotlib, Agg: no display), with Chinese labels in
Noto Sans CJK SC (Debian's fonts-noto-cjk)."""

from __future__ import annotations

import io
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib import font_manager
from matplotlib.figure import Figure

from workorder_pipeline.schemas.figures import Figure as Rate
from workorder_pipeline.schemas.report import MonthlyReport
from workorder_pipeline.services.report_formats.labels import unit_name, zh

#: The font family every chart's text uses: without it, Chinese labels are drawn as boxes.
CJK_FAMILY = "Noto Sans CJK SC"


class MissingFont(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    png: bytes


def _font() -> None:
    """Use the CJK family; refuse to draw boxes when it is not installed."""
    try:
        font_manager.findfont(font_manager.FontProperties(family=CJK_FAMILY), fallback_to_default=False)
    except ValueError:
        raise MissingFont(f"font {CJK_FAMILY!r} not found: install Debian's fonts-noto-cjk") from None
    plt.rcParams["font.family"] = [CJK_FAMILY]
    plt.rcParams["axes.unicode_minus"] = False


def report_charts(report: MonthlyReport) -> list[Chart]:
    """Inflow by kind against the month before, and the units' on-time closure; none for an
    empty month."""
    if report.empty:
        return []
    _font()
    charts = [_inflow(report)]
    units = [u for u in report.closure.units if u.figures]
    if units:
        charts.append(_closure(report))
    return charts


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def _inflow(report: MonthlyReport) -> Chart:
    rows = report.inflow.by_kind
    labels = [zh(row.kind) for row in rows]
    figure, axes = plt.subplots(figsize=(7.5, 3.4))
    positions = range(len(rows))
    width = 0.2
    series = (
        ("上月信号", [r.signals_previous for r in rows], "#b8c7d9"),
        ("本月信号", [r.signals for r in rows], "#2f5d8a"),
        ("上月工单", [r.orders_previous for r in rows], "#f2c9a0"),
        ("本月工单", [r.orders for r in rows], "#d9731f"),
    )
    for index, (name, values, color) in enumerate(series):
        bars = axes.bar(
            [p + (index - 1.5) * width for p in positions], values, width, label=name, color=color
        )
        axes.bar_label(bars, fontsize=7)
    axes.set_xticks(list(positions), labels)
    axes.set_ylabel("数量")
    axes.set_title(f"{report.month} 信号与工单（与上月对比）")
    axes.legend(fontsize=8, ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    return Chart("信号与工单", _png(figure))


def _closure(report: MonthlyReport) -> Chart:
    units = [u for u in report.closure.units if u.figures]
    figure, axes = plt.subplots(figsize=(7.5, 0.5 + 0.45 * len(units) + 1.2))
    names = [unit_name(report, u.unit) for u in units]
    for offset, (key, label, color) in enumerate(
        (
            (Rate.closed_on_time, Rate.closed_on_time.label_zh, "#2f5d8a"),
            (Rate.accepted_on_time, Rate.accepted_on_time.label_zh, "#7aa35a"),
        )
    ):
        values = []
        for unit in units:
            rate = unit.figures.get(key.value)
            values.append(100 * rate.value if rate is not None and rate.value is not None else 0.0)
        bars = axes.barh(
            [i + offset * 0.38 for i in range(len(units))], values, 0.38, label=label, color=color
        )
        axes.bar_label(bars, fmt="%.1f%%", fontsize=7)
    axes.set_yticks([i + 0.19 for i in range(len(units))], names)
    axes.invert_yaxis()
    axes.set_xlim(0, 110)
    axes.set_xlabel("百分比（%）")
    axes.set_title(f"{report.month} 各单位按时签收与按时办结")
    axes.legend(fontsize=8, loc="lower right")
    return Chart("按时签收与按时办结", _png(figure))
