"""The monthly report's tables as the tests expect them, computed with plain loops over a
generated month's lists (tests/report_month.py), never through the report's code."""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from tests.report_month import ENTERPRISES, KINDS, UNIT_NAMES, Month, Order
from workorder_pipeline.services.report_formats.labels import zh

Window = tuple[datetime, datetime]
Rows = dict[tuple[Any, ...], list[Any]]
WEIGHTS = {
    "accepted_on_time": 15,
    "closed": 20,
    "closed_on_time": 25,
    "satisfied": 25,
    "reworked": 5,
    "returned": 5,
    "extended": 5,
}
FIGURES = list(WEIGHTS)
LOWER_IS_BETTER = {"reworked", "returned", "extended"}


def inside(at: datetime, window: Window) -> bool:
    return window[0] <= at < window[1]


def compared(current: Counter[str], previous: Counter[str], keep_empty: bool = True) -> Rows:
    rows: Rows = {}
    for key in set(current) | set(previous):
        if key or keep_empty:
            rows[(zh(key),)] = [current[key], previous[key], current[key] - previous[key]]
    return rows


def unit(code: str) -> str:
    """A unit as the report shows it: its name in policy/units.yaml, or its id marked ※."""
    if code == "*":
        return "全部单位"
    return UNIT_NAMES.get(code, f"{code}※")


def signals(orders: Iterable[Order], month: Month, window: Window) -> dict[str, Counter[str]]:
    """The valid signals received in the window, by kind, platform, category and region."""
    found: dict[str, Counter[str]] = {key: Counter() for key in ("kind", "platform", "category", "region")}
    for order in orders:
        for n, at in enumerate(order.signals):
            if inside(at, window):
                found["kind"][order.kind] += 1
                found["platform"][order.signal_platforms[n]] += 1
                found["region"][order.signal_regions[n] or ""] += 1
                if order.category:
                    found["category"][order.category] += 1
    for row in month.suppressed:
        if inside(row.at, window):
            found["kind"][row.kind] += 1
            found["platform"][row.platform] += 1
            found["region"][row.region or ""] += 1
            if row.category:
                found["category"][row.category] += 1
    return found


def both(signals: tuple[Counter[str], Counter[str]], orders: tuple[Counter[str], Counter[str]]) -> Rows:
    """(signals, signals before, orders, orders before) under each key of any of them."""
    keys = set().union(*signals, *orders)
    return {(zh(key),): [signals[0][key], signals[1][key], orders[0][key], orders[1][key]] for key in keys}


def inflow(orders: list[Order], months: list[Month], window: Window, earlier: Window) -> dict[str, Rows]:
    everything = Month(orders=orders)
    for month in months:
        everything.suppressed += month.suppressed
        everything.dead_letters += month.dead_letters
    now, before = signals(orders, everything, window), signals(orders, everything, earlier)
    kinds, kinds_before = now["kind"], before["kind"]

    def orders_by(attribute: str, within: Window) -> Counter[str]:
        found = Counter(getattr(o, attribute) or "" for o in orders if inside(o.created_at, within))
        return found if attribute != "category" else Counter({k: n for k, n in found.items() if k})

    def letters(index: int, within: Window) -> Counter[str]:
        return Counter(str(row[index]) for row in everything.dead_letters if inside(row[2], within))

    suppressed = [
        Counter(r.reason for r in everything.suppressed if inside(r.at, w)) for w in (window, earlier)
    ]
    by_kind, by_kind_before = orders_by("kind", window), orders_by("kind", earlier)
    return {
        "信号与工单": {(zh(k),): [kinds[k], kinds_before[k], by_kind[k], by_kind_before[k]] for k in KINDS},
        "信号与工单按平台": both(
            (now["platform"], before["platform"]),
            (orders_by("platform", window), orders_by("platform", earlier)),
        ),
        "投诉按类别": both(
            (now["category"], before["category"]),
            (orders_by("category", window), orders_by("category", earlier)),
        ),
        "信号与工单按地区": both(
            (now["region"], before["region"]),
            (orders_by("region_code", window), orders_by("region_code", earlier)),
        ),
        "抑制按原因": compared(suppressed[0], suppressed[1]),
        "死信按原因": compared(letters(1, window), letters(1, earlier)),
        "死信按主题": compared(letters(0, window), letters(0, earlier)),
    }


def recurrences(orders: list[Order], window: Window, attribute: str) -> Rows:
    """Every plate or enterprise of the month's orders (the report shows the top 20)."""
    rows: dict[str, list[Order]] = defaultdict(list)
    for order in orders:
        key = getattr(order, attribute)
        if key is not None and inside(order.created_at, window):
            rows[key].append(order)
    found: Rows = {}
    for key, mine in rows.items():
        per_kind = [sum(o.kind == kind for o in mine) for kind in KINDS]
        closed = sum(o.status == "closed" for o in mine)
        returned = sum(bool(o.returns) for o in mine)
        name = [ENTERPRISES[key]] if attribute == "enterprise_id" else []
        found[(key,)] = [*name, *per_kind, len(mine), closed, len(mine) - closed, returned]
    return found


def categories_by_place(orders: list[Order], window: Window) -> Rows:
    counts: Counter[tuple[str, str, str]] = Counter()
    for o in orders:
        if o.category and inside(o.created_at, window):
            counts[zh(o.category), o.region_code or "（无）", o.place or "（无）"] += 1
    return {key: [n] for key, n in counts.items()}


def checkin_failures(orders: list[Order], window: Window) -> Rows:
    failures: Counter[str] = Counter()
    with_orders: dict[str, set[str]] = defaultdict(set)
    for o in orders:
        if o.kind == "checkin_failure" and o.enterprise_id:
            for at in o.signals:
                if inside(at, window):
                    failures[o.enterprise_id] += 1
                    with_orders[o.enterprise_id].add(o.id)
    return {(key,): [ENTERPRISES[key], n, len(with_orders[key])] for key, n in failures.items() if n >= 2}


def returns(orders: list[Order], window: Window, earlier: Window) -> dict[str, Rows]:
    reasons = [
        Counter(r for o in orders for at, r, _ in o.returns if inside(at, w)) for w in (window, earlier)
    ]
    by_route: Counter[tuple[str, str]] = Counter()
    for o in orders:
        for at, _reason, by in o.returns:
            if inside(at, window):
                by_route[o.route_key, unit(by)] += 1
    sent = Counter(o.route_key for o in orders if inside(o.created_at, window))
    return {
        "退单按原因": compared(reasons[0], reasons[1]),
        "退单按派发规则": {key: [n, sent[key[0]]] for key, n in by_route.items()},
    }


def rates(cohort: list[Order], now: datetime) -> dict[str, tuple[int, int]]:
    """The seven figures as processors/figures.py's docstring defines them, by hand."""
    found = dict.fromkeys(FIGURES, (0, 0))

    def add(figure: str, judged: bool, counts: bool) -> None:
        n, d = found[figure]
        found[figure] = (n + int(judged and counts), d + int(judged))

    for o in cohort:
        waiting = o.status == "returned"
        due, accepted = o.accept_due_at, o.holder_accepted_at
        add(
            "accepted_on_time",
            due is not None and not waiting and (accepted is not None or due <= now),
            due is not None and accepted is not None and accepted <= due,
        )
        add("closed", True, o.status == "closed")
        closed = o.status == "closed"
        add("closed_on_time", closed or (not waiting and o.due_at <= now), closed and bool(o.closed_on_time))
        content = o.callback in ("satisfied", "basically_satisfied")
        add("satisfied", o.callback in ("satisfied", "basically_satisfied", "unsatisfied"), content)
        add("reworked", True, o.rework_count > 0)
        add("returned", True, bool(o.returns))
        add("extended", True, o.extended)
    return found


def score(figures: dict[str, tuple[int, int]]) -> float | None:
    total = weighted = 0.0
    for figure, (n, d) in figures.items():
        if d:
            value = n / d
            total += WEIGHTS[figure]
            weighted += WEIGHTS[figure] * (1 - value if figure in LOWER_IS_BETTER else value)
    return round(100 * weighted / total, 2) if total else None


def nearest_rank(values: list[float], share: float) -> float | None:
    return sorted(values)[math.ceil(share * len(values)) - 1] if values else None


def closure(orders: list[Order], window: Window, earlier: Window, now: datetime) -> dict[str, Rows]:
    cohorts: dict[str, list[Order]] = defaultdict(list)
    before: dict[str, list[Order]] = defaultdict(list)
    for o in orders:
        if inside(o.created_at, window):
            cohorts[o.unit].append(o)
            cohorts["*"].append(o)
        if inside(o.created_at, earlier):
            before[o.unit].append(o)
            before["*"].append(o)
    figures: Rows = {}
    previous: Rows = {}
    times: Rows = {}
    for code, cohort in cohorts.items():
        unit_shown = unit(code)
        current = rates(cohort, now)
        old = rates(before[code], now) if before[code] else None
        values = [n / d if d else None for n, d in current.values()]
        figures[(unit_shown,)] = [len(cohort), *values, score(current), score(old) if old else None]
        if old:
            previous[(unit_shown,)] = [n / d if d else None for n, d in old.values()]
        accept = [(o.accepted_at - o.created_at).total_seconds() / 3600 for o in cohort if o.accepted_at]
        close = [(o.closed_at - o.created_at).total_seconds() / 3600 for o in cohort if o.closed_at]
        times[(unit_shown,)] = [
            statistics.median(accept) if accept else None,
            nearest_rank(accept, 0.9),
            statistics.median(close) if close else None,
            nearest_rank(close, 0.9),
        ]
    return {"考核指标": figures, "上月指标": previous, "办理时长": times}


def overdue_ids(orders: list[Order], window: Window) -> set[str]:
    return {
        o.id for o in orders if inside(o.due_at, window) and (o.closed_at is None or o.closed_at > o.due_at)
    }


def escalated_levels(orders: list[Order], window: Window) -> dict[str, str]:
    rank = ("accept_overdue", "overdue", "leadership")
    found: dict[str, str] = {}
    for o in orders:
        for level, at in o.escalations:
            if inside(at, window) and (o.id not in found or rank.index(level) > rank.index(found[o.id])):
                found[o.id] = level
    return found
