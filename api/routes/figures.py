"""``GET /figures``: the figures a unit is judged by (processors/figures.py defines each),
for the command center and supervisors."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.exceptions import RequestValidationError

from workorder_pipeline.api.deps import Api, Caller
from workorder_pipeline.api.models import FigureOut, FiguresOut, UnitFiguresOut
from workorder_pipeline.services.figures import PeriodRefused, figures_for_period, period_named

router = APIRouter()


@router.get(
    "/figures",
    response_model=FiguresOut,
    responses={
        403: {"description": "A unit's token: figures are for the command center and supervisors"},
        422: {"description": "A period that is neither this_month, last_month nor YYYY-MM"},
    },
)
def figures(
    caller: Caller,
    api: Api,
    period: Annotated[
        str, Query(max_length=16, description="this_month, last_month or YYYY-MM")
    ] = "this_month",
) -> FiguresOut:
    """Per unit, per unit and kind, and for all units together (unit "*"), the rates of the
    orders created in the month (China time), as they stand now, and the score."""
    if not caller.may_read_figures:
        raise HTTPException(403, "考核指标仅供指挥中心和督查查看")
    now = api.clock()
    try:
        chosen = period_named(period, now)
    except PeriodRefused:
        raise RequestValidationError([{"loc": ("query", "period"), "type": "not_a_period"}]) from None
    rows = figures_for_period(api.store, chosen, api.weights, now)
    return FiguresOut(
        period=chosen.label,
        start=chosen.start,
        end=chosen.end,
        computed_at=now,
        units=[
            UnitFiguresOut(
                unit=row.unit,
                kind=row.kind.value if row.kind else None,
                score=row.score,
                figures=[
                    FigureOut(
                        figure=figure.value,
                        label_zh=figure.label_zh,
                        numerator=rate.numerator,
                        denominator=rate.denominator,
                        value=rate.value,
                    )
                    for figure, rate in row.rates.items()
                ],
            )
            for row in rows
        ],
    )
