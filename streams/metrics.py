"""Prometheus metrics of the intake. Labels are closed sets: kind, unit, reason, topic, route.

Never a plate, a name, a phone, a ticket id or free text in a label.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram, disable_created_metrics

from services.commands import CommandResult
from services.intake import IntakeResult

#: Key of the routing tree's root: an order decided there matched no route.
DEFAULT_ROUTE_KEY = "default"

# The *_created series double the exposition for no use on our dashboards.
disable_created_metrics()  # type: ignore[no-untyped-call]

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
ESCALATIONS = Counter(
    "wo_escalations_total",
    "Reminders (to the unit) and escalations (overdue: command center; leadership) published, by level.",
    ["level"],
)
COMMANDS_APPLIED = Counter("wo_commands_applied_total", "Lifecycle commands applied, by action.", ["action"])
COMMANDS_REJECTED = Counter(
    "wo_commands_rejected_total",
    "Lifecycle commands refused or dead-lettered, by reason code.",
    ["reason"],
)
INTAKE_BATCH_FAILURES = Counter(
    "wo_intake_batch_failures_total",
    "Intake batches that failed (database or broker unavailable) and will be retried.",
)
INTAKE_BATCH_SECONDS = Histogram(
    "wo_intake_batch_duration_seconds",
    "Time to validate, route, store and publish one intake batch.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def record_intake(result: IntakeResult) -> None:
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
    for order in result.created:
        WORK_ORDERS_CREATED.labels(kind=order.kind.value, unit=order.unit).inc()
        WORK_ORDERS_ROUTED.labels(unit=order.unit, route=order.route_key).inc()
        if order.deadline_provisional:
            WORK_ORDERS_PROVISIONAL_DEADLINE.labels(kind=order.kind.value).inc()
        if order.route_key == DEFAULT_ROUTE_KEY:
            WORK_ORDERS_UNROUTABLE.labels(kind=order.kind.value).inc()


def record_commands(result: CommandResult) -> None:
    for action, count in result.applied.items():
        COMMANDS_APPLIED.labels(action=action).inc(count)
    for reason, count in result.rejected.items():
        COMMANDS_REJECTED.labels(reason=reason).inc(count)
