"""The supervisor's page: the figures of each unit (processors/figures.py defines them), this
month against last month, each number a link to the orders behind it; read-only."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from workorder_pipeline.api.console.render import page
from workorder_pipeline.api.console.session import ConsoleError, Parts, Reader, SignedInOfficer
from workorder_pipeline.api.console.views import order_view
from workorder_pipeline.api.deps import Api
from workorder_pipeline.schemas.records import OrderQuery
from workorder_pipeline.schemas.times import CHINA_STANDARD_TIME
from workorder_pipeline.services.figure_snapshots import FigureSnapshot
from workorder_pipeline.services.figures import (
    ALL_UNITS,
    MONTH_PERIODS,
    Figure,
    MonthPeriod,
)

router = APIRouter(prefix="/console")
#: Orders listed behind one number, at most.
BEHIND_LIMIT = 200


def _reader(who: SignedInOfficer) -> None:
    if not who.principal.may_read_figures:
        raise ConsoleError(403, "考核指标仅供指挥中心和督查查看", who)


def _as_of(snapshot: FigureSnapshot, refresh_seconds: float) -> str:
    """When the figures were read, in China time, and how often they are read again."""
    at = snapshot.at.astimezone(CHINA_STANDARD_TIME).strftime("%H:%M")
    every = f"，每 {refresh_seconds:g} 秒更新" if refresh_seconds else ""
    return f"数据截至 {at} (UTC+08:00){every}"


@router.get("/figures", include_in_schema=False)
def figures_page(request: Request, parts: Parts, who: Reader) -> Response:
    _reader(who)
    snapshot = parts.figures.current()
    tables = {
        name: {row.unit: row for row in figures.rows if row.kind is None}
        for name, figures in snapshot.periods.items()
    }
    units = sorted(set().union(*(set(table) for table in tables.values())), key=lambda u: (u != ALL_UNITS, u))
    context = {
        "figures": list(Figure),
        "periods": [(name.value, snapshot.periods[name].period.label) for name in MONTH_PERIODS],
        "tables": {name.value: table for name, table in tables.items()},
        "units": units,
        "all_units": ALL_UNITS,
        "as_of": _as_of(snapshot, parts.figures.refresh_seconds),
    }
    return page(request, parts, who, "figures.html", context)


@router.get("/figures/orders", include_in_schema=False)
def figure_orders(
    request: Request,
    parts: Parts,
    api: Api,
    who: Reader,
    period: str,
    unit: str,
    figure: str,
    part: str = "numerator",
) -> Response:
    _reader(who)
    known = period in MonthPeriod.__members__ and figure in set(Figure)
    if not known or part not in ("numerator", "denominator"):
        raise ConsoleError(404, "没有这项指标", who)
    # The snapshot the numbers came from: the list holds as many orders as the number said.
    snapshot = parts.figures.current()
    chosen, which = snapshot.periods[MonthPeriod(period)], Figure(figure)
    ids = chosen.behind.ids(unit, which, part == "numerator")
    now = parts.clock()
    orders = api.store.orders(OrderQuery(ids=tuple(ids[:BEHIND_LIMIT]), limit=BEHIND_LIMIT), now).orders
    unit_text = "全部单位" if unit == ALL_UNITS else unit
    part_text = "计入分子的工单" if part == "numerator" else "参与考核的工单（分母）"
    context = {
        "heading": f"{chosen.period.label} {unit_text} {which.label_zh}：{part_text}",
        "rows": [order_view(o, now, parts.policy, parts.calendar) for o in orders],
        "caption": part_text,
        "more": max(0, len(ids) - BEHIND_LIMIT),
        "as_of": _as_of(snapshot, parts.figures.refresh_seconds),
    }
    return page(request, parts, who, "figure_orders.html", context)
