"""The supervisor's page: the figures of each unit (processors/figures.py defines them), this
month against last month, each number a link to the orders behind it; read-only."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from workorder_pipeline.api.console.render import ConsoleError, page
from workorder_pipeline.api.console.session import Parts, Reader, SignedInOfficer
from workorder_pipeline.api.console.views import order_view
from workorder_pipeline.api.deps import Api
from workorder_pipeline.schemas.records import OrderQuery
from workorder_pipeline.services.figures import (
    ALL_UNITS,
    MONTH_PERIODS,
    Figure,
    figures_for_period,
    month_periods,
    orders_of_figure,
)

router = APIRouter(prefix="/console")
#: Orders listed behind one number, at most.
BEHIND_LIMIT = 200


def _reader(who: SignedInOfficer) -> None:
    if not who.principal.may_read_figures:
        raise ConsoleError(403, "考核指标仅供指挥中心和督查查看", who)


@router.get("/figures", include_in_schema=False)
def figures_page(request: Request, parts: Parts, api: Api, who: Reader) -> Response:
    _reader(who)
    now = parts.clock()
    periods = month_periods(now)
    weights = parts.policy.figures.score
    tables = {
        name: {
            row.unit: row for row in figures_for_period(api.store, period, weights, now) if row.kind is None
        }
        for name, period in periods.items()
    }
    units = sorted(set().union(*(set(table) for table in tables.values())), key=lambda u: (u != ALL_UNITS, u))
    context = {
        "figures": list(Figure),
        "periods": [(name.value, periods[name].label) for name in MONTH_PERIODS],
        "tables": {name.value: table for name, table in tables.items()},
        "units": units,
        "all_units": ALL_UNITS,
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
    now = parts.clock()
    periods = {name.value: chosen for name, chosen in month_periods(now).items()}
    if period not in periods or figure not in set(Figure) or part not in ("numerator", "denominator"):
        raise ConsoleError(404, "没有这项指标", who)
    chosen, which = periods[period], Figure(figure)
    ids = orders_of_figure(api.store, chosen, unit, which, part == "numerator", now)
    orders = api.store.orders(OrderQuery(ids=tuple(ids[:BEHIND_LIMIT]), limit=BEHIND_LIMIT), now).orders
    unit_text = "全部单位" if unit == ALL_UNITS else unit
    part_text = "计入分子的工单" if part == "numerator" else "参与考核的工单（分母）"
    context = {
        "heading": f"{chosen.label} {unit_text} {which.label_zh}：{part_text}",
        "rows": [order_view(o, now, parts.policy, parts.calendar) for o in orders],
        "caption": part_text,
        "more": max(0, len(ids) - BEHIND_LIMIT),
    }
    return page(request, parts, who, "figure_orders.html", context)
