"""The monthly analysis report (研判报告): the month's counts from the database, shaped as
schemas.report.MonthlyReport. The closure figures are processors/figures.py's, through
``FiguresSource``: one definition for the report, the metrics and the console."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from workorder_pipeline.processors.durations import median, percentile
from workorder_pipeline.processors.figures import ALL_UNITS, Period, UnitFigures
from workorder_pipeline.schemas.figures import ScoreWeights
from workorder_pipeline.schemas.report import (
    CategoryPlace,
    Closure,
    Compared,
    FigureValue,
    Inflow,
    KindInflow,
    MonthlyReport,
    OrderLine,
    Outcomes,
    Recurrence,
    Recurring,
    RepeatedCheckins,
    Returns,
    RouteReturns,
    SignalsAndOrders,
    UnitClosure,
)
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.services.figures import figures_for_period
from workorder_pipeline.services.ports import FigureFactsReader, ReportReads, Window

#: The figures of every unit for a period, judged at ``now`` (services/figures.py).
FiguresSource = Callable[[Period, datetime], Sequence[UnitFigures]]

#: How many vehicles, enterprises, places and listed orders a table shows at most.
TOP = 20
LISTED = 50
#: Check-in failures of one enterprise in a month that make it "repeated".
REPEATED_CHECKINS = 2


def figures_from(facts: FigureFactsReader, weights: ScoreWeights) -> FiguresSource:
    """The figures of services/figures.py (the API's GET /figures and the leader's gauges)."""
    return lambda period, now: figures_for_period(facts, period, weights, now)


def previous_month(period: Period) -> Period:
    year, month = (int(part) for part in period.label.split("-"))
    return Period.month(year - (month == 1), (month - 2) % 12 + 1)


def monthly_report(
    reads: ReportReads,
    period: Period,
    now: datetime,
    figures: FiguresSource | None = None,
    *,
    unit_names: Mapping[str, str],
) -> MonthlyReport:
    """The report of ``period`` (a calendar month of China time), as the database holds it at
    ``now``; ``unit_names``: the policy's (schemas.policy.Units.names)."""
    window, before = (period.start, period.end), previous_month(period)
    earlier = (before.start, before.end)
    closure = _closure(reads, period, before, now, figures)
    returns = _returns(reads, window, earlier)
    shown = {u.unit for u in closure.units} | {o.unit for o in (*closure.overdue, *closure.escalated)}
    shown |= {r.unit for r in returns.by_route}
    return MonthlyReport(
        month=period.label,
        unit_names={unit: unit_names[unit] for unit in sorted(shown) if unit in unit_names},
        start=period.start,
        end=period.end,
        generated_at=now,
        inflow=_inflow(reads, window, earlier),
        recurring=_recurring(reads, window),
        returns=returns,
        closure=closure,
    )


def compared(current: Counter[str], previous: Counter[str]) -> list[Compared]:
    """Every key of either month, the largest this month first."""
    keys = sorted(set(current) | set(previous), key=lambda key: (-current[key], -previous[key], key))
    return [Compared(key=key, current=current[key], previous=previous[key]) for key in keys]


def signals_and_orders(
    signals: Counter[str], signals_before: Counter[str], orders: Counter[str], orders_before: Counter[str]
) -> list[SignalsAndOrders]:
    """Every key of any of the four counts, the most signals this month first."""
    keys = set(signals) | set(signals_before) | set(orders) | set(orders_before)
    ordered = sorted(keys, key=lambda key: (-signals[key], -orders[key], -signals_before[key], key))
    return [
        SignalsAndOrders(
            key=key,
            signals=signals[key],
            signals_previous=signals_before[key],
            orders=orders[key],
            orders_previous=orders_before[key],
        )
        for key in ordered
    ]


def _inflow(reads: ReportReads, window: Window, earlier: Window) -> Inflow:
    signals, signals_before = reads.signals_by_kind(window), reads.signals_by_kind(earlier)
    orders, orders_before = reads.orders_by("kind", window), reads.orders_by("kind", earlier)
    by_kind = [
        KindInflow(
            kind=kind,
            signals=signals[kind.value],
            signals_previous=signals_before[kind.value],
            orders=orders[kind.value],
            orders_previous=orders_before[kind.value],
        )
        for kind in SignalKind
    ]

    def both(read: Callable[[Window], Counter[str]]) -> list[Compared]:
        return compared(read(window), read(earlier))

    def of_each(
        signals: Callable[[Window], Counter[str]], orders: Callable[[Window], Counter[str]]
    ) -> list[SignalsAndOrders]:
        return signals_and_orders(signals(window), signals(earlier), orders(window), orders(earlier))

    return Inflow(
        by_kind=by_kind,
        by_platform=of_each(reads.signals_by_platform, reads.orders_by_platform),
        # Complaints only: an order of another kind has no category ("").
        by_category=[
            row
            for row in of_each(reads.signals_by_category, lambda w: reads.orders_by("category", w))
            if row.key
        ],
        by_region=of_each(reads.signals_by_region, lambda w: reads.orders_by("region_code", w)),
        suppressed_by_reason=both(reads.suppressed_by_reason),
        dead_letters_by_reason=both(lambda w: reads.dead_letters_by("reason", w)),
        dead_letters_by_publisher=both(lambda w: reads.dead_letters_by("topic", w)),
    )


def _recurring(reads: ReportReads, window: Window) -> Recurring:
    return Recurring(
        vehicles=_recurrences(reads.recurring("plate", window, TOP)),
        enterprises=_recurrences(reads.recurring("enterprise_id", window, TOP)),
        categories_by_place=[CategoryPlace(**row) for row in reads.categories_by_place(window, TOP)],
        checkin_failures=[
            RepeatedCheckins(
                enterprise_id=row["enterprise_id"],
                name=row["name"] or "",
                failures=row["failures"],
                orders=row["orders"],
            )
            for row in reads.repeated_checkin_failures(window, REPEATED_CHECKINS)
        ],
    )


def _recurrences(rows: list[dict[str, object]]) -> list[Recurrence]:
    """One Recurrence per subject, from its rows per kind (in the order given)."""
    grouped: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        grouped.setdefault(str(row["key"]), []).append(row)
    found = []
    for key, kinds in grouped.items():
        per_kind = {kind: 0 for kind in SignalKind}
        for row in kinds:
            per_kind[SignalKind(str(row["kind"]))] = _int(row["orders"])
        total = sum(per_kind.values())
        closed = sum(_int(row["closed"]) for row in kinds)
        found.append(
            Recurrence(
                key=key,
                name=next((str(row["name"]) for row in kinds if row["name"]), ""),
                per_kind=per_kind,
                total=total,
                outcomes=Outcomes(
                    closed=closed, open=total - closed, returned=sum(_int(row["returned"]) for row in kinds)
                ),
            )
        )
    return found


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float | str) else 0


def _returns(reads: ReportReads, window: Window, earlier: Window) -> Returns:
    rows, rows_before = reads.returns(window), reads.returns(earlier)
    by_reason: Counter[str] = Counter()
    by_reason_before: Counter[str] = Counter()
    for row in rows_before:
        by_reason_before[row["reason"] or ""] += row["n"]
    by_route: Counter[tuple[str, str]] = Counter()
    for row in rows:
        by_reason[row["reason"] or ""] += row["n"]
        by_route[row["route_key"], row["unit"] or ""] += row["n"]
    sent = reads.orders_by_route(window)
    routes = sorted(by_route, key=lambda key: (-by_route[key], key))
    return Returns(
        by_reason=compared(by_reason, by_reason_before),
        by_route=[
            RouteReturns(
                route_key=route, unit=unit, returned=by_route[route, unit], orders=sent.get(route, 0)
            )
            for route, unit in routes
        ],
    )


def _closure(
    reads: ReportReads, period: Period, before: Period, now: datetime, figures: FiguresSource | None
) -> Closure:
    window = (period.start, period.end)
    times = _times(reads.clocks(window))
    current = _by_unit(figures(period, now) if figures else [])
    previous = _by_unit(figures(before, now) if figures else [])
    units = [*sorted((set(times) | set(current)) - {ALL_UNITS}), ALL_UNITS]
    rows = [_unit_closure(unit, times.get(unit, {}), current.get(unit), previous.get(unit)) for unit in units]
    overdue, overdue_total = reads.overdue(window, LISTED)
    escalated, escalated_total = reads.escalated(window, LISTED)
    return Closure(
        units=[row for row in rows if row.orders or row.unit == ALL_UNITS],
        overdue=[OrderLine(**{**row, "level": ""}) for row in overdue],
        overdue_total=overdue_total,
        escalated=[OrderLine(**row) for row in escalated],
        escalated_total=escalated_total,
    )


def _by_unit(rows: Sequence[UnitFigures]) -> dict[str, UnitFigures]:
    return {row.unit: row for row in rows if row.kind is None}


def _times(
    clocks: list[tuple[str, datetime, datetime | None, datetime | None]],
) -> dict[str, dict[str, list[float]]]:
    """Unit (and ALL_UNITS) -> hours to accept, hours to close, and an entry per order."""
    found: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"accept": [], "close": [], "orders": []})
    for unit, created, accepted, closed in clocks:
        for key in (unit, ALL_UNITS):
            found[key]["orders"].append(1.0)
            if accepted is not None:
                found[key]["accept"].append((accepted - created).total_seconds() / 3600)
            if closed is not None:
                found[key]["close"].append((closed - created).total_seconds() / 3600)
    return dict(found)


def _unit_closure(
    unit: str, times: dict[str, list[float]], current: UnitFigures | None, previous: UnitFigures | None
) -> UnitClosure:
    accept, close = times.get("accept", []), times.get("close", [])
    return UnitClosure(
        unit=unit,
        orders=len(times.get("orders", [])),
        figures=_values(current),
        figures_previous=_values(previous),
        score=current.score if current else None,
        score_previous=previous.score if previous else None,
        accept_hours_median=median(accept),
        accept_hours_p90=percentile(accept, 0.9),
        close_hours_median=median(close),
        close_hours_p90=percentile(close, 0.9),
    )


def _values(row: UnitFigures | None) -> dict[str, FigureValue]:
    if row is None:
        return {}
    return {
        figure.value: FigureValue(numerator=rate.numerator, denominator=rate.denominator)
        for figure, rate in row.rates.items()
    }
