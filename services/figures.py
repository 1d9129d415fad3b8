"""The figures of a period, from the database (definitions: processors/figures.py)."""

from __future__ import annotations

__all__ = [
    "ALL_UNITS",
    "MONTH_PERIODS",
    "Figure",
    "Period",
    "PeriodRefused",
    "Rate",
    "ScoreWeights",
    "UnitFigures",
    "figures_for_period",
    "month_periods",
    "orders_of_figure",
    "period_named",
]

from datetime import datetime
from enum import StrEnum

from workorder_pipeline.processors.figures import (
    ALL_UNITS,
    Figure,
    Period,
    Rate,
    ScoreWeights,
    UnitFigures,
    month_label,
    orders_behind,
    unit_figures,
)
from workorder_pipeline.services.ports import FigureFactsReader


class MonthPeriod(StrEnum):
    """The calendar months (China time) the leader exports (the ``period`` label)."""

    this_month = "this_month"
    last_month = "last_month"


MONTH_PERIODS = tuple(MonthPeriod)


def figures_for_period(
    reader: FigureFactsReader, period: Period, weights: ScoreWeights, now: datetime
) -> list[UnitFigures]:
    """The period's cohort per unit, per unit and kind, and over all units; one read."""
    return unit_figures(reader.order_facts(period.start, period.end), period, weights, now)


def orders_of_figure(
    reader: FigureFactsReader, period: Period, unit: str, figure: Figure, numerator: bool, now: datetime
) -> list[str]:
    """The ids of the orders behind one number of the figures (see processors.figures)."""
    return orders_behind(reader.order_facts(period.start, period.end), period, unit, figure, numerator, now)


def month_periods(now: datetime) -> dict[MonthPeriod, Period]:
    return {MonthPeriod.this_month: Period.this_month(now), MonthPeriod.last_month: Period.last_month(now)}


class PeriodRefused(ValueError):
    """Not a period of the figures; the message never quotes what was given (it may be
    10,000 characters or hold U+0000)."""

    def __init__(self) -> None:
        super().__init__("give this_month, last_month or a month as YYYY-MM")


def period_named(text: str, now: datetime) -> Period:
    """``this_month``, ``last_month`` or a month ``YYYY-MM`` (China time); PeriodRefused otherwise."""
    if text in MonthPeriod.__members__:
        return month_periods(now)[MonthPeriod(text)]
    named = month_label(text)
    if named is None or named[0] < 1:
        raise PeriodRefused
    return Period.month(*named)
