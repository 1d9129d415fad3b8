"""Prometheus metrics of the pipeline: what supervisors watch (domain.md) and how it runs.

Labels are closed sets: ``kind``, ``unit``, ``priority``, ``reason``, ``route`` (route keys
of the policy), ``level``, ``topic``, ``on_time`` and ``platform`` (bounded: see
``platform_label``); ``task`` and ``on`` of streams/resilience (enums). Never a plate, a
name, a phone, a ticket id, a work-order id or free text in a label (tests/monitoring
enforces it on a running pipeline).

Several workers: every worker exports the counters and histograms of what it handled,
so they add up with ``sum`` (``sum by (le, ...)`` for histograms); the last event time
per platform aggregates with ``max``. Gauges read from the database (open, overdue, oldest
open order) are exported by the leader only: streams/supervision.py.

Counters and histograms supervisors' ratios are built on start at zero for every known
unit and kind (``initialise``): ``increase()`` cannot see the first increment of a series
that appears with a value above zero, which would drop the first order of each unit
after every restart.
"""

from __future__ import annotations

import collections
import re
import threading
from collections.abc import Iterable
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from workorder_pipeline.schemas.commands import EscalationLevel, LifecycleEventName, Outcome, ReturnReason
from workorder_pipeline.schemas.notifications import AttemptOutcome, ChannelType
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.services.commands import CommandResult
from workorder_pipeline.services.intake import IntakeResult

#: Key of the routing tree's root: an order decided there matched no route.
DEFAULT_ROUTE_KEY = "default"

# The *_created series double the exposition for no use on our dashboards.
disable_created_metrics()  # type: ignore[no-untyped-call]

MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
#: Time to accept and time to close: seconds (urgent orders) to months (working-day limits,
#: extensions). histogram_quantile interpolates inside a bucket: with each bound at most
#: 1.5 times the one below, a quantile is off by at most a quarter (an accept in 66 s showed
#: as 180 s between the former bounds 60 s and 300 s). Beyond the last bound it answers that
#: bound: 90 days.
ORDER_CLOCK_BUCKETS = (
    30.0,
    45.0,
    MINUTE,
    1.5 * MINUTE,
    2 * MINUTE,
    3 * MINUTE,
    4 * MINUTE,
    5 * MINUTE,
    7.5 * MINUTE,
    10 * MINUTE,
    15 * MINUTE,
    20 * MINUTE,
    30 * MINUTE,
    45 * MINUTE,
    HOUR,
    1.5 * HOUR,
    2 * HOUR,
    3 * HOUR,
    4 * HOUR,
    6 * HOUR,
    8 * HOUR,
    12 * HOUR,
    18 * HOUR,
    DAY,
    1.5 * DAY,
    2 * DAY,
    3 * DAY,
    4 * DAY,
    5 * DAY,
    7 * DAY,
    10 * DAY,
    14 * DAY,
    21 * DAY,
    30 * DAY,
    45 * DAY,
    60 * DAY,
    90 * DAY,
)
#: Event time to dispatch: sub-second for live alarms; hours for daily suspect lists; up to
#: WO_MAX_EVENT_AGE_DAYS (400 by default) for a complaint taken in late. The former last
#: bound, 2 days, made every later order read as 2 days.
LATENCY_BUCKETS = (
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    20.0,
    30.0,
    45.0,
    MINUTE,
    1.5 * MINUTE,
    2 * MINUTE,
    3 * MINUTE,
    5 * MINUTE,
    7.5 * MINUTE,
    10 * MINUTE,
    15 * MINUTE,
    30 * MINUTE,
    HOUR,
    2 * HOUR,
    3 * HOUR,
    6 * HOUR,
    12 * HOUR,
    DAY,
    2 * DAY,
    3 * DAY,
    7 * DAY,
    14 * DAY,
    30 * DAY,
    90 * DAY,
    400 * DAY,
)

# --- intake ---------------------------------------------------------------------------

SIGNALS_RECEIVED = Counter(
    "wo_signals_received_total", "Valid signals taken in, by kind of signal.", ["kind"]
)
SIGNALS_REJECTED = Counter(
    "wo_signals_rejected_total",
    "Messages sent to the dead-letter topic, by inbound topic and reason.",
    ["topic", "reason"],
)
SIGNALS_REDELIVERED = Counter(
    "wo_signals_redelivered_total",
    "Signals whose publisher id was already known: re-sent or re-delivered, no new order.",
    ["kind"],
)
SIGNALS_DEDUPLICATED = Counter(
    "wo_signals_deduplicated_total",
    "Signals merged into an open work order with the same dedupe key, by kind.",
    ["kind"],
)
SIGNALS_SUPPRESSED = Counter(
    "wo_signals_suppressed_total",
    "Signals triage decided make no order (recorded with their rule), by reason.",
    ["reason"],
)
SIGNALS_LATE = Counter(
    "wo_signals_late_total",
    "Complaints older than WO_MAX_EVENT_AGE_DAYS at receipt that made or joined an order all the same.",
    ["kind"],
)
WORK_ORDERS_ROUTED = Counter(
    "wo_work_orders_routed_total",
    "Work orders created, by the unit and the route key that chose it.",
    ["unit", "route"],
)
WORK_ORDERS_UNROUTABLE = Counter(
    "wo_work_orders_unroutable_total",
    "Work orders no route claimed, left in the command center's manual queue, by kind.",
    ["kind"],
)
WORK_ORDERS_CREATED = Counter(
    "wo_work_orders_created_total", "Work orders created, by kind of signal and unit.", ["kind", "unit"]
)
WORK_ORDERS_PROVISIONAL_DEADLINE = Counter(
    "wo_work_orders_provisional_deadline_total",
    "Work orders whose deadline counts days of a year with no official holiday schedule loaded.",
    ["kind"],
)
WORK_ORDERS_DISPATCHED = Counter(
    "wo_work_orders_dispatched_total", "Work-order messages published to the units.", ["unit"]
)
PIPELINE_LATENCY = Histogram(
    "wo_pipeline_latency_seconds",
    "From the signal's event time (the earliest merged into the order) to the order's first "
    "publication on the dispatched topic, by kind.",
    ["kind"],
    buckets=LATENCY_BUCKETS,
)
PLATFORM_LAST_EVENT = Gauge(
    "wo_platform_last_event_timestamp_seconds",
    "Event time of the newest valid signal from each publishing platform (never later than "
    "when it was taken in). Several workers: aggregate with max.",
    ["platform"],
)
INTAKE_BATCH_FAILURES = Counter(
    "wo_intake_batch_failures_total",
    "Intake batches that failed (database or broker unavailable) and will be retried.",
)
UNPROCESSABLE = Counter(
    "wo_unprocessable_total",
    "Messages (or outbox rows) a task gave up on: they failed alone, permanently, and were "
    "dead-lettered or refused (outbox: left unpublished) so that the rest went on.",
    ["task"],
)
INTAKE_BATCH_SECONDS = Histogram(
    "wo_intake_batch_duration_seconds",
    "Time from reading an intake batch to its offsets committed (retries included).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# --- lifecycle --------------------------------------------------------------------------

COMMANDS_APPLIED = Counter("wo_commands_applied_total", "Lifecycle commands applied, by action.", ["action"])
COMMANDS_REJECTED = Counter(
    "wo_commands_rejected_total",
    "Lifecycle commands refused or dead-lettered, by reason code.",
    ["reason"],
)
WORK_ORDERS_CLOSED = Counter(
    "wo_work_orders_closed_total",
    "Work orders closed, by kind, the unit that had them and whether it was by their due_at.",
    ["kind", "unit", "on_time"],
)
WORK_ORDERS_RETURNED = Counter(
    "wo_work_orders_returned_total",
    "Work orders a unit returned to the command center (misrouted...), by kind, unit and reason.",
    ["kind", "unit", "reason"],
)
WORK_ORDERS_REOPENED = Counter(
    "wo_work_orders_reopened_total",
    "Work orders reopened (by the command center, or by an unsatisfied complainant), by kind and unit.",
    ["kind", "unit"],
)
TIME_TO_ACCEPT = Histogram(
    "wo_work_order_time_to_accept_seconds",
    "From an order's creation to its first acceptance, by kind and the accepting unit.",
    ["kind", "unit"],
    buckets=ORDER_CLOCK_BUCKETS,
)
TIME_TO_CLOSE = Histogram(
    "wo_work_order_time_to_close_seconds",
    "From an order's creation to its closing, by kind and the closing unit.",
    ["kind", "unit"],
    buckets=ORDER_CLOCK_BUCKETS,
)
ESCALATIONS = Counter(
    "wo_escalations_total",
    "Reminders (to the unit) and escalations (overdue: command center; leadership) published, "
    "by level, unit and kind.",
    ["level", "unit", "kind"],
)

# --- platforms ---------------------------------------------------------------------------

#: Distinct ``platform`` label values one process exports; later ones are exported as
#: ``other``. A province connects a handful of monitoring platforms (vehicle alarms carry
#: their platform_id), plus the rectification system, the check-in desk and the complaint
#: channels (fixed names): the limit only guards against a publisher inventing ids.
PLATFORM_LABEL_LIMIT = 64
OTHER_PLATFORM = "other"
PLATFORM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_platforms_lock = threading.Lock()
_platform_labels: set[str] = set()
_platform_latest: dict[str, float] = {}


def platform_label(platform: str) -> str:
    """The label value for a publisher's platform id: itself while it is a plain id
    (letters, digits, ``.``, ``_``, ``-``) among the first PLATFORM_LABEL_LIMIT seen, else
    ``other``. So a plate, a name or free text can never become a label."""
    if not PLATFORM_ID.match(platform):
        return OTHER_PLATFORM
    with _platforms_lock:
        if platform in _platform_labels:
            return platform
        if len(_platform_labels) >= PLATFORM_LABEL_LIMIT:
            return OTHER_PLATFORM
        _platform_labels.add(platform)
        return platform


def _record_platform_event(platform: str, event_time: float) -> None:
    label = platform_label(platform)
    with _platforms_lock:
        if event_time <= _platform_latest.get(label, float("-inf")):
            return
        _platform_latest[label] = event_time
        PLATFORM_LAST_EVENT.labels(platform=label).set(event_time)


# --- recording ---------------------------------------------------------------------------


NOTIFICATIONS = Counter(
    "wo_notifications_total",
    "Notification attempts by channel and outcome (delivered, rejected, unreachable, "
    "misconfigured); gave_up: a notification failed for good, the command center told.",
    ["channel", "outcome"],
)


def initialise(units: Iterable[str]) -> None:
    """Create at zero the series supervisors' ratios and quantiles are computed from, for
    every unit of the policy and every kind (see the module's docstring)."""
    kinds = [kind.value for kind in SignalKind]
    for kind in kinds:
        SIGNALS_RECEIVED.labels(kind=kind)
        PIPELINE_LATENCY.labels(kind=kind)
        for unit in units:
            WORK_ORDERS_CREATED.labels(kind=kind, unit=unit)
            WORK_ORDERS_REOPENED.labels(kind=kind, unit=unit)
            TIME_TO_ACCEPT.labels(kind=kind, unit=unit)
            TIME_TO_CLOSE.labels(kind=kind, unit=unit)
            for on_time in ("true", "false"):
                WORK_ORDERS_CLOSED.labels(kind=kind, unit=unit, on_time=on_time)
            for reason in ReturnReason:
                WORK_ORDERS_RETURNED.labels(kind=kind, unit=unit, reason=reason.value)
            for level in EscalationLevel:
                ESCALATIONS.labels(level=level.value, unit=unit, kind=kind)
    for channel in ChannelType:
        for outcome in AttemptOutcome:
            if outcome not in (AttemptOutcome.sending, AttemptOutcome.interrupted):
                NOTIFICATIONS.labels(channel=channel.value, outcome=outcome.value)


def record_intake(result: IntakeResult, now: datetime) -> None:
    """Count an intake batch; ``now``: when its orders reached the dispatched topic."""
    for kind, count in result.received.items():
        SIGNALS_RECEIVED.labels(kind=kind.value).inc(count)
    for kind, count in result.redelivered.items():
        SIGNALS_REDELIVERED.labels(kind=kind.value).inc(count)
    for letter in result.dead_letters:
        SIGNALS_REJECTED.labels(topic=letter.source.topic, reason=letter.reason.value).inc()
    for kind, count in result.merged.items():
        SIGNALS_DEDUPLICATED.labels(kind=kind.value).inc(count)
    for reason, count in result.suppressed.items():
        SIGNALS_SUPPRESSED.labels(reason=reason.value).inc(count)
    for kind, count in result.late.items():
        SIGNALS_LATE.labels(kind=kind.value).inc(count)
    # Counted per label set, not per order: a labels() lookup costs as much as the rest.
    created = collections.Counter((order.kind, order.unit, order.route_key) for order in result.created)
    for (kind, unit, route), count in created.items():
        WORK_ORDERS_CREATED.labels(kind=kind.value, unit=unit).inc(count)
        WORK_ORDERS_ROUTED.labels(unit=unit, route=route).inc(count)
        if route == DEFAULT_ROUTE_KEY:
            WORK_ORDERS_UNROUTABLE.labels(kind=kind.value).inc(count)
    provisional = collections.Counter(order.kind for order in result.created if order.deadline_provisional)
    for kind, count in provisional.items():
        WORK_ORDERS_PROVISIONAL_DEADLINE.labels(kind=kind.value).inc(count)
    latencies: dict[SignalKind, list[float]] = {}
    for order in result.to_dispatch:
        latency = (now - order.first_seen_at).total_seconds()
        latencies.setdefault(order.kind, []).append(max(0.0, latency))
    for kind, values in latencies.items():
        histogram = PIPELINE_LATENCY.labels(kind=kind.value)
        for value in values:
            histogram.observe(value)
    for unit, count in collections.Counter(order.unit for order in result.to_dispatch).items():
        WORK_ORDERS_DISPATCHED.labels(unit=unit).inc(count)
    newest_allowed = now.timestamp()  # a publisher's clock running ahead does not hide silence
    for platform, event_time in result.platforms.items():
        _record_platform_event(platform, min(event_time.timestamp(), newest_allowed))


def record_commands(result: CommandResult) -> None:
    for action, count in result.applied.items():
        COMMANDS_APPLIED.labels(action=action).inc(count)
    for reason, count in result.rejected.items():
        COMMANDS_REJECTED.labels(reason=reason).inc(count)
    for outcome in result.outcomes:
        order, event = outcome.order, outcome.event
        if outcome.outcome is not Outcome.applied or order is None or event is None:
            continue
        kind = order.kind.value
        first_acceptance = order.accepted_at is not None and order.accepted_at == outcome.command.at
        if event.event is LifecycleEventName.accepted and order.accepted_at is not None and first_acceptance:
            TIME_TO_ACCEPT.labels(kind=kind, unit=order.unit).observe(
                max(0.0, (order.accepted_at - order.created_at).total_seconds())
            )
        elif event.event is LifecycleEventName.closed and order.closed_at is not None:
            on_time = "true" if order.closed_on_time else "false"
            WORK_ORDERS_CLOSED.labels(kind=kind, unit=order.unit, on_time=on_time).inc()
            TIME_TO_CLOSE.labels(kind=kind, unit=order.unit).observe(
                max(0.0, (order.closed_at - order.created_at).total_seconds())
            )
        elif event.event is LifecycleEventName.returned and outcome.command.reason is not None:
            # The order now sits in the command center's queue: count it for the unit that returned it.
            returned_by = str(event.detail.get("returned_by") or order.unit)
            WORK_ORDERS_RETURNED.labels(
                kind=kind, unit=returned_by, reason=outcome.command.reason.value
            ).inc()
        elif event.event is LifecycleEventName.reopened:
            WORK_ORDERS_REOPENED.labels(kind=kind, unit=order.unit).inc()


def record_escalation(level: str, unit: str, kind: str) -> None:
    ESCALATIONS.labels(level=level, unit=unit, kind=kind).inc()


def record_notification(channel: ChannelType, outcome: AttemptOutcome) -> None:
    NOTIFICATIONS.labels(channel=channel.value, outcome=outcome.value).inc()
