"""A generated month of work: orders across units, kinds and outcomes, with their signals,
returns, reassignments, extensions, callbacks, escalations, suppressed signals and dead
letters, written straight into the tables (as the pipeline leaves them). The monthly report's
tests compute their expectations from ``Month``'s plain lists; bench/report_benchmark.py
generates 200,000 orders with it."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from sqlalchemy.engine import Engine

from workorder_pipeline.storage.tables import (
    dead_letter_log,
    escalation,
    suppressed_signal,
    work_order,
    work_order_event,
    work_order_source,
)

#: squad-9 is not in policy/units.yaml (a unit since removed): the report shows its id, marked.
UNITS = ("squad-1", "squad-2", "squad-3", "command-center", "squad-9")
#: Unit id -> name up to its note, read here from the policy file itself (not through the code).
UNIT_NAMES: dict[str, str] = {
    str(unit["id"]): str(unit["name"]).split(" (")[0]
    for unit in yaml.safe_load((Path(__file__).resolve().parents[1] / "policy" / "units.yaml").read_text())[
        "units"
    ]
}
KINDS = ("vehicle_alarm", "suspect", "checkin_failure", "complaint")
CATEGORIES = ("refusal", "detour", "overcharging", "illegal_operation", "service_attitude", "other")
REGIONS = ("310101", "310104", "310115", None)
PLACES = {"310101": "人民广场", "310104": "徐家汇", "310115": "浦东机场", None: None}
ENTERPRISES = {f"91310000MA1K{n:06d}": f"运输公司{n}" for n in range(1, 16)}
PLATFORMS = ("plat-a", "plat-b", "plat-c")
CHANNELS = ("12328", "12345")
RETURN_REASONS = ("not_our_jurisdiction", "unclear_ownership", "misrouted", "insufficient_information")
SUPPRESSIONS = ("mute_window", "whitelist", "threshold", "minor_violation", "stale")
REJECTIONS = ("not_json", "invalid_field", "bad_plate", "implausible_time")
TOPICS = ("monitoring.vehicle-alarms", "hotline.complaints", "workorders.commands")
CALLBACKS = ("satisfied", "basically_satisfied", "unsatisfied", "unreachable")
#: Personal data in every complaint's payload: never in any format of the report.
COMPLAINANT = {"name": "欧阳娜娜", "phone": "13912345678"}


@dataclass
class Order:
    id: str
    kind: str
    unit: str
    route_key: str
    created_at: datetime
    due_at: datetime
    status: str
    plate: str | None
    enterprise_id: str | None
    region_code: str | None
    place: str | None
    category: str | None
    accept_due_at: datetime | None
    #: The column: the first unit's acceptance.
    accepted_at: datetime | None
    #: The acceptance of the unit holding it now (after a reassignment, its own).
    holder_accepted_at: datetime | None
    closed_at: datetime | None
    closed_on_time: bool | None
    callback: str | None
    rework_count: int
    #: (at, reason, unit that returned it) of each return.
    returns: list[tuple[datetime, str, str]] = field(default_factory=list)
    extended: bool = False
    #: Receipt times of its signals (the first is its creation).
    signals: list[datetime] = field(default_factory=list)
    #: The platform (or channel) of its first signal.
    platform: str = ""
    #: Each signal's platform and region (the first's: the order's).
    signal_platforms: list[str] = field(default_factory=list)
    signal_regions: list[str | None] = field(default_factory=list)
    #: (level, fired_at) of its escalations.
    escalations: list[tuple[str, datetime]] = field(default_factory=list)


@dataclass(frozen=True)
class Suppressed:
    kind: str
    reason: str
    platform: str
    at: datetime
    region: str | None
    #: A complaint's category; None for other kinds.
    category: str | None


@dataclass
class Month:
    orders: list[Order] = field(default_factory=list)
    suppressed: list[Suppressed] = field(default_factory=list)
    #: (topic, reason, at)
    dead_letters: list[tuple[str, str, datetime]] = field(default_factory=list)


def generate(start: datetime, end: datetime, orders: int, seed: int = 7, prefix: str = "") -> Month:
    """``orders`` orders created in [start, end) with everything that happened to them by
    ``end`` + 10 days; suppressed signals and dead letters about a tenth as many each."""
    rng = random.Random(seed)
    span = (end - start).total_seconds()
    month = Month()
    for n in range(orders):
        created = start + timedelta(seconds=rng.uniform(0, span))
        if n == 0:
            created = start  # the first moment of the month is in it
        month.orders.append(_order(rng, f"WO-{prefix}{n:07d}", created))
    for _ in range(max(1, orders // 10)):
        at = start + timedelta(seconds=rng.uniform(0, span))
        kind = rng.choice(KINDS)
        month.suppressed.append(
            Suppressed(
                kind,
                rng.choice(SUPPRESSIONS),
                _platform(rng, kind),
                at,
                None if kind == "checkin_failure" else rng.choice(REGIONS),
                rng.choice(CATEGORIES) if kind == "complaint" else None,
            )
        )
        month.dead_letters.append((rng.choice(TOPICS), rng.choice(REJECTIONS), at))
    return month


def _order(rng: random.Random, order_id: str, created: datetime) -> Order:
    kind = rng.choice(KINDS)
    unit = rng.choice(UNITS)
    region = rng.choice(REGIONS) if kind != "checkin_failure" else None  # a check-in has no region
    enterprise = rng.choice([*ENTERPRISES, None])
    plate = None if kind == "checkin_failure" else rng.choice([*(f"沪A{n:05d}" for n in range(30)), None])
    if kind == "checkin_failure" and enterprise is None:
        enterprise = rng.choice(list(ENTERPRISES))
    hours = rng.choice((24.0, 72.0, 120.0))
    order = Order(
        id=order_id,
        kind=kind,
        unit=unit,
        route_key=f"{kind}-{rng.choice(('a', 'b'))}",
        created_at=created,
        due_at=created + timedelta(hours=hours),
        status="dispatched",
        plate=plate,
        enterprise_id=enterprise,
        region_code=region,
        place=PLACES[region] if kind == "complaint" else None,
        category=rng.choice(CATEGORIES) if kind == "complaint" else None,
        accept_due_at=created + timedelta(hours=2) if rng.random() < 0.9 else None,
        accepted_at=None,
        holder_accepted_at=None,
        closed_at=None,
        closed_on_time=None,
        callback=None,
        rework_count=int(rng.random() < 0.08),
        platform=_platform(rng, kind),
    )
    order.signals.append(created)
    order.signal_platforms.append(order.platform)
    order.signal_regions.append(region)
    for _ in range(rng.choice((0, 0, 0, 1, 2))):  # merged later signals, a few into the next month
        order.signals.append(created + timedelta(hours=rng.uniform(1, 24 * 12)))
        # From another platform or place at times: the order keeps its first signal's.
        order.signal_platforms.append(_platform(rng, kind))
        order.signal_regions.append(rng.choice(REGIONS) if kind != "checkin_failure" else None)
    _work(rng, order)
    return order


def _platform(rng: random.Random, kind: str) -> str:
    """A complaint's channel, an alarm's or check-in's platform; a suspect list has none."""
    if kind == "suspect":
        return ""
    return rng.choice(CHANNELS if kind == "complaint" else PLATFORMS)


def _work(rng: random.Random, order: Order) -> None:
    """What the units did: accept, return (and re-route), extend, close with a callback."""
    roll = rng.random()
    if roll < 0.08:
        return  # never accepted
    accepted = order.created_at + timedelta(hours=rng.uniform(0.05, 4))
    order.accepted_at = order.holder_accepted_at = accepted
    order.status = "accepted"
    if rng.random() < 0.12:
        returned = accepted + timedelta(hours=rng.uniform(0.1, 3))
        order.returns.append((returned, rng.choice(RETURN_REASONS), order.unit))
        if rng.random() < 0.3:
            order.status, order.unit, order.holder_accepted_at = "returned", "command-center", None
            return  # waiting to be re-routed
        order.unit = rng.choice([u for u in UNITS if u != order.unit])
        order.holder_accepted_at = returned + timedelta(hours=rng.uniform(0.1, 5))
    if rng.random() < 0.1:
        order.extended = True
        order.due_at += timedelta(hours=48)
    if rng.random() < 0.25:
        order.status = "in_progress"
        if rng.random() < 0.5:
            order.escalations.append(("overdue", order.due_at + timedelta(minutes=1)))
            if rng.random() < 0.5:
                order.escalations.append(("leadership", order.due_at + timedelta(hours=24)))
        return
    closed = order.created_at + timedelta(hours=rng.uniform(1, 150))
    order.status, order.closed_at, order.closed_on_time = "closed", closed, closed <= order.due_at
    if order.kind == "complaint":
        order.callback = rng.choice(CALLBACKS)
    if rng.random() < 0.05:
        order.escalations.append(("accept_overdue", order.created_at + timedelta(hours=2)))


def write(engine: Engine, month: Month, batch: int = 5000) -> None:
    """Insert the month's rows, ``batch`` orders per transaction."""
    for first in range(0, len(month.orders), batch):
        chunk = month.orders[first : first + batch]
        rows: dict[str, list[dict[str, Any]]] = {"order": [], "source": [], "event": [], "escalation": []}
        for order in chunk:
            _rows(order, rows)
        with engine.begin() as conn:
            conn.execute(sa.insert(work_order), rows["order"])
            conn.execute(sa.insert(work_order_source), rows["source"])
            if rows["event"]:
                conn.execute(sa.insert(work_order_event), rows["event"])
            if rows["escalation"]:
                conn.execute(sa.insert(escalation), rows["escalation"])
    with engine.begin() as conn:
        if month.suppressed:
            conn.execute(
                sa.insert(suppressed_signal), [_suppressed(n, row) for n, row in enumerate(month.suppressed)]
            )
        if month.dead_letters:
            conn.execute(
                sa.insert(dead_letter_log),
                [
                    {"id": f"dl-{first_id(month)}-{n}", "topic": t, "reason": r, "at": at}
                    for n, (t, r, at) in enumerate(month.dead_letters)
                ],
            )


def first_id(month: Month) -> str:
    return month.orders[0].id if month.orders else "none"


def _suppressed(n: int, row: Suppressed) -> dict[str, Any]:
    return {
        "source_key": f"{row.kind}:suppressed-{row.at.timestamp()}-{n}",
        "kind": row.kind,
        "reason": row.reason,
        "rule_key": "r",
        "detail": "d",
        "unit": "squad-1",
        "route_key": "r",
        "occurred_at": row.at,
        "received_at": row.at,
        "violation_key": None,
        "payload": _payload(row.kind, row.platform, row.region, row.category),
        "region_code": row.region,
    }


def _rows(order: Order, rows: dict[str, list[dict[str, Any]]]) -> None:
    rows["order"].append(
        {
            "id": order.id,
            "kind": order.kind,
            "status": order.status,
            "unit": order.unit,
            "priority": "P2",
            "route_key": order.route_key,
            "created_at": order.created_at,
            "updated_at": order.created_at,
            "due_at": order.due_at,
            "plate": order.plate,
            "enterprise_id": order.enterprise_id,
            "enterprise_name": ENTERPRISES.get(order.enterprise_id or ""),
            "region_code": order.region_code,
            "place": order.place,
            "summary": f"{order.kind} 欧阳娜娜 13912345678" if order.kind == "complaint" else order.kind,
            "occurrences": len(order.signals),
            "first_seen_at": order.created_at,
            "last_seen_at": order.signals[-1],
            "accept_due_at": order.accept_due_at,
            "accepted_at": order.accepted_at,
            "closed_at": order.closed_at,
            "closed_on_time": order.closed_on_time,
            "rework_count": order.rework_count,
            "category": order.category,
        }
    )
    for n, at in enumerate(order.signals):
        platform, region = order.signal_platforms[n], order.signal_regions[n]
        rows["source"].append(
            {
                "source_key": f"{order.kind}:{order.id}-{n}",
                "work_order_id": order.id,
                "kind": order.kind,
                "received_at": at,
                "payload": _payload(order.kind, platform, region, order.category),
                "region_code": region,
            }
        )
    rows["event"] += _events(order)
    for level, fired in order.escalations:
        rows["escalation"].append(
            {
                "work_order_id": order.id,
                "level": level,
                "due_at": order.due_at,
                "unit": order.unit,
                "fired_at": fired,
            }
        )


def _payload(kind: str, platform: str, region: str | None, category: str | None) -> dict[str, Any]:
    """Where the contracts put each field (../shared/contracts.md); a complaint's names its
    complainant, which no format of the report may show."""
    if kind == "complaint":
        subject = {"region_code": region, "place": PLACES[region]}
        return {"channel": platform, "category": category, "subject": subject, "complainant": COMPLAINANT}
    if kind == "suspect":
        checkpoints = [{"id": "cp-1", "region_code": region, "passes": 3}] if region else []
        return {"entry_id": "e", "checkpoints": checkpoints}
    if kind == "vehicle_alarm":
        return {"platform_id": platform, "location": {"lat": 31.2, "lon": 121.4, "region_code": region}}
    return {"platform_id": platform}


def _events(order: Order) -> list[dict[str, Any]]:
    events: list[tuple[datetime, str, dict[str, Any]]] = []
    if order.accepted_at is not None:
        events.append((order.accepted_at, "accepted", {}))
    for at, reason, by in order.returns:
        events.append((at, "returned", {"reason": reason, "returned_by": by}))
        if order.status != "returned":
            events.append((at + timedelta(seconds=1), "reassigned", {"to": order.unit}))
            assert order.holder_accepted_at is not None
            events.append((order.holder_accepted_at, "accepted", {}))
    if order.extended:
        events.append((order.created_at + timedelta(hours=6), "extension_approved", {}))
    if order.closed_at is not None:
        detail = {"callback": order.callback} if order.callback else {}
        events.append((order.closed_at, "closed", detail))
    return [
        {"work_order_id": order.id, "at": at, "type": kind, "actor": order.unit, "detail": detail}
        for at, kind, detail in events
    ]


def hostile_months(now: datetime) -> list[str]:
    """The month parameter's worst inputs (none names a month a report can be made for at
    ``now``): out of range, too short, a path, control characters, 10,000 characters,
    digits of other scripts, a month still to come."""
    local = now + timedelta(hours=8)
    year, month = local.year + (local.month + 2 > 12), (local.month + 1) % 12 + 1  # the month after next
    return [
        "2026-13",
        "2026-00",
        "0000-01",
        "0001-01",
        "1999-12",
        "9999-12",
        "2026-1",
        "26-11",
        "2026-11-01",
        "../../etc/passwd",
        "..%2F..%2Fetc%2Fpasswd",
        "2026-11\x00",
        "\x00",
        "2026-11\n",
        " 2026-11",
        "9" * 10_000,
        "２０２６-１１",
        "٢٠٢٦-١١",
        "2026‐11",
        f"{year:04d}-{month:02d}",
    ]


def china_month(year: int, month: int) -> tuple[datetime, datetime]:
    """[start, end) in UTC of a calendar month of China time."""
    start = datetime(year, month, 1, tzinfo=UTC) - timedelta(hours=8)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC) - timedelta(hours=8)
    return start, end
