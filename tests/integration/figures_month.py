"""A generated month of orders for the figures' tests: what happened to each order (its story),
the rows the pipeline would have written for it, and the figures worked out by hand from the
stories with plain loops (never with processors/figures.py).

November 2026 in China time runs from 2026-10-31T16:00Z to 2026-11-30T16:00Z; ``NOW`` is in
December, so November is "last_month" and its orders are judged as they stand at NOW.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from workorder_pipeline.storage.tables import work_order, work_order_event

NOW = datetime(2026, 12, 10, 4, 0, tzinfo=UTC)
NOVEMBER_START = datetime(2026, 10, 31, 16, 0, tzinfo=UTC)
NOVEMBER_END = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
UNITS = ("squad-1", "squad-2", "squad-3")
KINDS = ("vehicle_alarm", "suspect", "checkin_failure", "complaint")
FIGURES = ("accepted_on_time", "closed", "closed_on_time", "satisfied", "reworked", "returned", "extended")


@dataclass
class Story:
    """One order: what happened to it, and the rows that record it."""

    id: str
    unit: str
    kind: str
    created_at: datetime
    status: str = "dispatched"
    accept_due_at: datetime | None = None
    #: When the unit holding it now accepted it (None: it has not).
    holder_accepted_at: datetime | None = None
    due_at: datetime = NOW
    closed: bool = False
    closed_on_time: bool | None = None
    last_callback: str | None = None
    reworks: int = 0
    returns: int = 0
    extended: bool = False
    column_accepted_at: datetime | None = None
    closed_at: datetime | None = None
    events: list[tuple[datetime, str, dict[str, Any]]] = field(default_factory=list)

    def event(self, at: datetime, name: str, **detail: Any) -> None:
        self.events.append((at, name, detail))


def generate(count: int, seed: int) -> list[Story]:
    """``count`` orders created around November (a few just outside it), with every outcome."""
    rng = random.Random(seed)
    edges = [
        NOVEMBER_START,
        NOVEMBER_START - timedelta(seconds=1),
        NOVEMBER_END - timedelta(seconds=1),
        NOVEMBER_END,
    ]
    stories = []
    for index in range(count):
        created = edges[index] if index < len(edges) else _created(rng)
        stories.append(_story(rng, f"WO-{seed}-{index:04d}", created))
    return stories


def _created(rng: random.Random) -> datetime:
    span = (NOVEMBER_END - NOVEMBER_START).total_seconds() + 4 * 86400
    return NOVEMBER_START - timedelta(days=2) + timedelta(seconds=int(rng.uniform(0, span)))


def _story(rng: random.Random, order_id: str, created: datetime) -> Story:
    s = Story(order_id, rng.choice(UNITS), rng.choice(KINDS), created)
    s.due_at = created + timedelta(days=rng.choice([2, 5, 15, 40]))
    s.accept_due_at = None if rng.random() < 0.1 else created + timedelta(hours=2)
    first_accept = created + timedelta(hours=rng.choice([1, 3]))
    path = rng.choices(
        ["waiting", "accepted", "reassigned", "returned_waiting", "returned_rerouted"], [1, 5, 1, 1, 1]
    )[0]
    if path == "waiting":
        return s
    s.column_accepted_at = first_accept
    s.event(first_accept, "accepted")
    s.holder_accepted_at, s.status = first_accept, "accepted"
    if path == "reassigned":
        _reassign(rng, s, created + timedelta(hours=5))
    elif path.startswith("returned"):
        s.event(created + timedelta(hours=6), "returned", reason="not_our_jurisdiction", returned_by=s.unit)
        s.returns, s.unit, s.status, s.holder_accepted_at = 1, "command-center", "returned", None
        if path == "returned_waiting":
            return s
        _reassign(rng, s, created + timedelta(hours=8))
    if s.holder_accepted_at is None:
        return s
    if rng.random() < 0.3:
        s.event(s.holder_accepted_at + timedelta(hours=1), rng.choice(["extension_approved", "extended"]))
        s.extended = True
        s.due_at += timedelta(days=7)
    _work(rng, s)
    return s


def _reassign(rng: random.Random, s: Story, at: datetime) -> None:
    s.event(at, "reassigned", to="x")
    s.unit = rng.choice([u for u in UNITS if u != s.unit])
    s.status, s.holder_accepted_at = "dispatched", None
    if s.accept_due_at is not None:
        s.accept_due_at = at + timedelta(hours=2)
    if rng.random() < 0.7:
        accepted = at + timedelta(hours=rng.choice([1, 3]))
        s.event(accepted, "accepted")
        s.holder_accepted_at, s.status = accepted, "accepted"


def _work(rng: random.Random, s: Story) -> None:
    """Closures, callbacks, reopenings and reworks; the story ends closed or in progress."""
    s.status = "in_progress"
    at = s.holder_accepted_at or s.created_at
    for _round in range(rng.choice([0, 1, 1, 2, 3])):
        at += timedelta(days=rng.choice([1, 3, 20]))
        if at >= NOW:
            return
        callback = rng.choice(["satisfied", "basically_satisfied", "unsatisfied", "unreachable"])
        if s.kind == "complaint" and callback == "unsatisfied":
            s.reworks += 1
            s.event(at, "reopened", callback=callback, rework_count=s.reworks)
            s.last_callback, s.closed, s.closed_on_time, s.status = callback, False, None, "in_progress"
            continue
        if rng.random() < 0.3 and s.closed:  # the command center reopens a closed order
            s.reworks += 1
            s.event(at, "reopened", note_given=False, rework_count=s.reworks)
            s.closed, s.closed_on_time, s.status = False, None, "in_progress"
            continue
        detail: dict[str, Any] = {"disposition": "case_filed", "on_time": at <= s.due_at}
        if s.kind == "complaint":
            detail["callback"] = callback
            s.last_callback = callback
        s.event(at, "closed", **detail)
        s.closed, s.closed_on_time, s.closed_at, s.status = True, at <= s.due_at, at, "closed"


# --- the figures by hand --------------------------------------------------------------


def expected(
    stories: list[Story], start: datetime = NOVEMBER_START, end: datetime = NOVEMBER_END
) -> dict[tuple[str, str, str], tuple[int, int]]:
    """{(unit, kind, figure): (numerator, denominator)} of the orders created in [start, end),
    per unit and kind only (pairs with no order are absent)."""
    found: dict[tuple[str, str, str], list[int]] = {}
    for s in stories:
        if not start <= s.created_at < end:
            continue
        waiting = s.status == "returned"
        for figure in FIGURES:
            pair = found.setdefault((s.unit, s.kind, figure), [0, 0])
            judged, counted = _judge(s, figure, waiting)
            pair[0] += int(judged and counted)
            pair[1] += int(judged)
    return {key: (num, den) for key, (num, den) in found.items()}


def _judge(s: Story, figure: str, waiting: bool) -> tuple[bool, bool]:
    if figure == "accepted_on_time":
        if s.accept_due_at is None or waiting:
            return False, False
        if s.holder_accepted_at is not None:
            return True, s.holder_accepted_at <= s.accept_due_at
        return s.accept_due_at <= NOW, False
    if figure == "closed":
        return True, s.closed
    if figure == "closed_on_time":
        if s.closed:
            return True, bool(s.closed_on_time)
        return (not waiting and s.due_at <= NOW), False
    if figure == "satisfied":
        if s.last_callback in ("satisfied", "basically_satisfied"):
            return True, True
        return s.last_callback == "unsatisfied", False
    if figure == "reworked":
        return True, s.reworks > 0
    if figure == "returned":
        return True, s.returns > 0
    return True, s.extended


# --- the rows -----------------------------------------------------------------------------


def write(engine: Engine, stories: list[Story]) -> None:
    orders = [_order_row(s) for s in stories]
    events = [
        {"work_order_id": s.id, "at": at, "type": name, "actor": "squad", "detail": detail}
        for s in stories
        for at, name, detail in s.events
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(work_order), orders)
        if events:
            conn.execute(sa.insert(work_order_event), events)


def _order_row(s: Story) -> dict[str, Any]:
    return {
        "id": s.id,
        "kind": s.kind,
        "status": s.status,
        "unit": s.unit,
        "priority": "P2",
        "route_key": "r",
        "created_at": s.created_at,
        "updated_at": s.created_at,
        "due_at": s.due_at,
        "summary": "generated",
        "occurrences": 1,
        "first_seen_at": s.created_at,
        "last_seen_at": s.created_at,
        "accepted_at": s.column_accepted_at,
        "closed_at": s.closed_at if s.closed else None,
        "closed_on_time": s.closed_on_time if s.closed else None,
        "rework_count": s.reworks,
        "accept_due_at": s.accept_due_at,
        "returned_at": s.created_at if s.status == "returned" else None,
    }
