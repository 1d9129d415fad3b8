"""The figures a supervisor is judged by: one definition each, here. Pure: ``now`` comes in.

The cohort of a period is the orders *created* in it (half-open, UTC; calendar months are
months of China time), each attributed wholly to the unit that holds it now (a returned order
waiting to be re-routed: the command center), and judged on what the database says now: last
month's orders closed this month count as closed. Every figure counts orders, never events, so
an order closed, reopened and closed again counts once, as it stands.

- 按时签收率 ``accepted_on_time``: of the orders with an acceptance clock (``accept_due_at``)
  that the unit holding them has accepted, or whose acceptance deadline has passed by ``now``,
  those accepted at or before it. The clock restarts on reassignment, so only the holder's
  acceptance counts. A returned order waiting to be re-routed is not judged (no unit's clock
  runs).
- 办结率 ``closed``: of all orders, those closed now (a reopened order is open).
- 按时办结率 ``closed_on_time``: of the orders closed now or past their deadline by ``now``,
  those whose latest closure was at or before the deadline in force then (extensions and the
  time spent returned, which moves the deadline later, included). An open order past its
  deadline can no longer close on time, so it counts against the rate at once; a returned
  order waiting to be re-routed is not judged (its clock is stopped).
- 满意率 ``satisfied``: of the orders whose latest callback to the complainant has a result
  other than unreachable, those satisfied or basically satisfied.
- 发回重办率 ``reworked``: of all orders, those sent back to be done again at least once.
- 退单率 ``returned``: of all orders, those returned by a unit at least once.
- 延期率 ``extended``: of all orders, those granted an extension (an approved request or the
  command center's extend).

A rate is None when nothing is judged (denominator 0), never NaN, never above 1. The score
(评分) is 100 × the weighted mean of the rates a unit has (1 - rate for reworks, returns and
extensions), over the figures with a weight and a rate; None when there is none.
"""

from __future__ import annotations

__all__ = [
    "ALL_UNITS",
    "FIGURE_LABELS_ZH",
    "Behind",
    "Figure",
    "OrderFacts",
    "Period",
    "Rate",
    "ScoreWeights",
    "UnitFigures",
    "behind",
    "contributions",
    "orders_behind",
    "score",
    "unit_figures",
]

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from workorder_pipeline.schemas.commands import CallbackResult
from workorder_pipeline.schemas.figures import FIGURE_LABELS_ZH, Figure, OrderFacts, ScoreWeights
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.times import CHINA_STANDARD_TIME
from workorder_pipeline.schemas.workorder import WorkOrderStatus

#: The unit of the totals over every unit.
ALL_UNITS = "*"

_CONTENT = frozenset({CallbackResult.satisfied, CallbackResult.basically_satisfied})
_JUDGED_CALLBACKS = _CONTENT | {CallbackResult.unsatisfied}


#: A month as people and URLs write it: ``YYYY-MM``, ASCII digits only (``\d`` would take
#: every script's digits), month 01-12.
_MONTH_LABEL = re.compile(r"([0-9]{4})-(0[1-9]|1[0-2])")


def month_label(text: str) -> tuple[int, int] | None:
    """(year, month) of a ``YYYY-MM`` label, or None: the one syntax of a month everywhere."""
    found = _MONTH_LABEL.fullmatch(text) if len(text) == 7 else None
    return None if found is None else (int(found[1]), int(found[2]))


@dataclass(frozen=True, slots=True)
class Period:
    """Orders created in [start, end) (UTC)."""

    start: datetime
    end: datetime
    label: str

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a period's bounds carry a time zone")
        if self.end <= self.start:
            raise ValueError("a period ends after it starts")

    @classmethod
    def month(cls, year: int, month: int) -> Period:
        """The calendar month in China time; label ``YYYY-MM``."""
        start = datetime(year, month, 1, tzinfo=CHINA_STANDARD_TIME)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=CHINA_STANDARD_TIME)
        return cls(start.astimezone(UTC), end.astimezone(UTC), f"{year:04d}-{month:02d}")

    @classmethod
    def rolling(cls, end: datetime, days: int) -> Period:
        """The ``days`` days before ``end``; label ``<days>d``."""
        if days < 1:
            raise ValueError("a rolling period lasts at least one day")
        return cls((end - timedelta(days=days)).astimezone(UTC), end.astimezone(UTC), f"{days}d")

    @classmethod
    def this_month(cls, now: datetime) -> Period:
        """The calendar month (China time) ``now`` is in: its orders so far."""
        local = now.astimezone(CHINA_STANDARD_TIME)
        return cls.month(local.year, local.month)

    @classmethod
    def last_month(cls, now: datetime) -> Period:
        local = now.astimezone(CHINA_STANDARD_TIME)
        return cls.month(local.year - (local.month == 1), (local.month - 2) % 12 + 1)

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True, slots=True)
class Rate:
    numerator: int
    denominator: int

    def __post_init__(self) -> None:
        if not 0 <= self.numerator <= self.denominator:
            raise ValueError(f"a rate needs 0 <= numerator <= denominator, got {self}")

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None

    def __add__(self, other: Rate) -> Rate:
        return Rate(self.numerator + other.numerator, self.denominator + other.denominator)


_NONE = Rate(0, 0)


@dataclass(frozen=True, slots=True)
class UnitFigures:
    #: A unit, or ALL_UNITS for the totals.
    unit: str
    #: None: every kind.
    kind: SignalKind | None
    rates: Mapping[Figure, Rate]
    score: float | None


def contributions(order: OrderFacts, now: datetime) -> dict[Figure, Rate]:
    """What one order adds to each figure of its unit: Rate(0|1, 0|1)."""
    return {figure: Rate(num, den) for figure, (num, den) in zip(Figure, _judged(order, now), strict=True)}


def _judged(order: OrderFacts, now: datetime) -> tuple[tuple[int, int], ...]:
    """(counted, judged) per figure, in the order of Figure."""
    waiting = order.status is WorkOrderStatus.returned  # clocks stopped: not judged on time
    closed = order.closed_at is not None
    due, accepted_at = order.accept_due_at, order.accepted_at
    accept_judged = due is not None and not waiting and (accepted_at is not None or due <= now)
    on_time_accept = due is not None and accepted_at is not None and accepted_at <= due
    close_judged = closed or (not waiting and order.due_at <= now)
    return (
        _one(accept_judged, on_time_accept),  # accepted_on_time
        _one(True, closed),  # closed
        _one(close_judged, closed and order.closed_on_time is True),  # closed_on_time
        _one(order.callback in _JUDGED_CALLBACKS, order.callback in _CONTENT),  # satisfied
        _one(True, order.rework_count > 0),  # reworked
        _one(True, order.returns > 0),  # returned
        _one(True, order.extended),  # extended
    )


def _one(judged: bool, counts: bool) -> tuple[int, int]:
    if judged:
        return (1, 1) if counts else (0, 1)
    return 0, 0


def score(rates: Mapping[Figure, Rate], weights: ScoreWeights) -> float | None:
    """100 × the weighted mean of the rates present (1 - rate where lower is better)."""
    total = weighted = 0.0
    for figure in Figure:
        weight, value = weights.weight(figure), rates.get(figure, _NONE).value
        if weight <= 0 or value is None:
            continue
        total += weight
        weighted += weight * (value if figure.higher_is_better else 1 - value)
    return round(100 * weighted / total, 2) if total else None


def unit_figures(
    facts: Iterable[OrderFacts], period: Period, weights: ScoreWeights, now: datetime
) -> list[UnitFigures]:
    """The period's cohort per unit, per unit and kind, and over all units (ALL_UNITS):
    sorted by unit, the all-kinds row first. Facts given twice for one order id count once
    (the last given)."""
    # One order, one count: facts repeated for an order (a re-closure) count as the last.
    latest = {order.id: order for order in facts}
    # A few hundred thousand orders a month fall into a few hundred (unit, kind, part in every
    # figure) alike: tallied first, then summed as plain integers.
    alike = Counter(
        (order.unit, order.kind, _judged(order, now))
        for order in latest.values()
        if order.created_at in period
    )
    sums: dict[tuple[str, SignalKind | None], list[int]] = defaultdict(lambda: [0] * (2 * len(Figure)))
    for (unit, kind, judged), orders in alike.items():
        added = [orders * part for pair in judged for part in pair]
        for key in _keys(unit, kind):
            row = sums[key]
            for index, part in enumerate(added):
                row[index] += part
    ordered = sorted(sums, key=lambda key: (key[0] != ALL_UNITS, key[0], key[1] is not None, key[1] or ""))
    result = []
    for unit, row_kind in ordered:
        row = sums[unit, row_kind]
        rates = {figure: Rate(row[2 * i], row[2 * i + 1]) for i, figure in enumerate(Figure)}
        result.append(UnitFigures(unit, row_kind, rates, score(rates, weights)))
    return result


def orders_behind(
    facts: Iterable[OrderFacts], period: Period, unit: str, figure: Figure, numerator: bool, now: datetime
) -> list[str]:
    """The ids of the orders a unit's (or ALL_UNITS') figure counts: in its numerator, or in
    its denominator (those judged); the orders a supervisor drills down to from a number."""
    return behind(facts, period, now).ids(unit, figure, numerator)


@dataclass(frozen=True, slots=True)
class Behind:
    """Each order of a period's cohort with its part in every figure, kept small (one bit per
    numerator and per denominator) so that a period's can be kept to answer drill-downs."""

    #: (id, unit, bits): bit 2i is counted in the i-th Figure, bit 2i+1 judged by it.
    orders: tuple[tuple[str, str, int], ...]

    def ids(self, unit: str, figure: Figure, numerator: bool) -> list[str]:
        bit = 1 << (2 * _FIGURE_INDEX[figure] + (0 if numerator else 1))
        return sorted(i for i, held_by, bits in self.orders if bits & bit and unit in (held_by, ALL_UNITS))


_FIGURE_INDEX = {figure: index for index, figure in enumerate(Figure)}


def behind(facts: Iterable[OrderFacts], period: Period, now: datetime) -> Behind:
    """The period's cohort, each order with what it counts in (facts repeated for an order id
    count as the last given, as in unit_figures)."""
    latest = {order.id: order for order in facts}
    found = []
    for order in latest.values():
        if order.created_at not in period:
            continue
        bits = 0
        for index, part in enumerate(part for pair in _judged(order, now) for part in pair):
            bits |= part << index
        found.append((order.id, order.unit, bits))
    return Behind(tuple(found))


def _keys(unit: str, kind: SignalKind) -> tuple[tuple[str, SignalKind | None], ...]:
    return (unit, None), (unit, kind), (ALL_UNITS, None), (ALL_UNITS, kind)
