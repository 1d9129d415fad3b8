"""The audit: the database and the output topics compared with what was sent."""

from __future__ import annotations

import json
from collections import Counter

import sqlalchemy as sa

from crashkit.kafka_io import read_topic
from crashkit.report import CrashReport
from crashkit.workload import Workload
from workorder_pipeline.config.settings import Topics
from workorder_pipeline.storage.database import create_engine
from workorder_pipeline.storage.tables import (
    processed_command,
    suppressed_signal,
    work_order,
    work_order_event,
    work_order_source,
)


def _audit(report: CrashReport, workload: Workload, url: str, bootstrap: str, topics: Topics) -> None:
    expected = workload.expected
    report.signal_messages = workload.signal_messages
    report.resends = workload.resends
    report.invalid = workload.invalid
    report.by_kind = workload.by_kind
    report.distinct_sent = len(expected.recorded_as)
    report.expected_orders = len(expected.orders)
    report.expected_merged = expected.merged
    report.expected_suppressed = expected.suppressed
    report.command_messages = workload.command_messages
    report.command_resends = workload.command_resends
    report.distinct_commands = len(workload.command_ids)

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            sources = [(r.source_key, r.work_order_id) for r in conn.execute(sa.select(work_order_source))]
            suppressed = [r.source_key for r in conn.execute(sa.select(suppressed_signal.c.source_key))]
            orders = list(
                conn.execute(
                    sa.select(
                        work_order.c.id,
                        work_order.c.status,
                        work_order.c.unit,
                        work_order.c.copied_to,
                        work_order.c.dispatched_at,
                        work_order.c.occurrences,
                    )
                )
            )
            commands = list(
                conn.execute(sa.select(processed_command.c.command_id, processed_command.c.outcome))
            )
            events = list(
                conn.execute(
                    sa.select(
                        work_order_event.c.work_order_id, work_order_event.c.type, work_order_event.c.detail
                    )
                    .where(work_order_event.c.actor != "pipeline")
                    .order_by(work_order_event.c.id)
                )
            )
    finally:
        engine.dispose()

    # Signals.
    recorded: Counter[str] = Counter([key for key, _ in sources] + suppressed)
    recorded_as: dict[str, str | None] = {key: order for key, order in sources}
    recorded_as.update({key: None for key in suppressed})
    report.orders = len(orders)
    report.sources_recorded = sum(recorded.values())
    report.suppressed = len(suppressed)
    report.merged = len(sources) - len(orders)
    twice = sum(count - 1 for count in recorded.values() if count > 1)
    extra_orders = sum(1 for order in orders if order.id not in expected.orders)
    report.duplicates = twice + extra_orders
    report.lost = sum(1 for key in expected.recorded_as if key not in recorded)
    report.misrecorded = sum(
        1
        for key, order in recorded_as.items()
        if key not in expected.recorded_as or expected.recorded_as[key] != order
    )
    per_order = Counter(order for _, order in sources)
    report.occurrences_off = sum(1 for order in orders if order.occurrences != per_order[order.id])
    report.not_dispatched = sum(1 for order in orders if order.dispatched_at is None)

    # One message per order version and recipient: its unit, and each unit it is copied to
    # (抄送), keyed by the recipient; a reassignment makes a version for the new unit. More
    # than that: published again after a crash.
    dispatched = Counter(
        (document["work_order_id"], bytes(r.key).decode(), document["squad"])
        for r in read_topic(bootstrap, topics.dispatched)
        for document in [json.loads(r.value)]
    )
    report.dispatched_messages = sum(dispatched.values())
    report.republished = report.dispatched_messages - len(dispatched)
    by_command = {(order_id, unit, unit) for order_id, unit in workload.reassigned.items()}
    report.command_versions = len(by_command)
    report.command_versions_republished = sum(n - 1 for v, n in dispatched.items() if v in by_command)
    received = {(order_id, key) for order_id, key, _ in dispatched}
    for order in orders:
        recipients = [order.unit, *(unit for unit in order.copied_to.split(",") if unit)]
        if order.dispatched_at is not None and any((order.id, unit) not in received for unit in recipients):
            report.not_dispatched += 1

    dead = {
        (d["source"]["topic"], d["source"]["partition"], d["source"]["offset"])
        for d in (json.loads(r.value) for r in read_topic(bootstrap, topics.dead_letters))
    }
    report.dead_letters_expected = workload.invalid
    report.dead_letters_distinct = len(dead)

    # Commands.
    report.commands_recorded = len(commands)
    report.command_outcomes = Counter(str(row.outcome) for row in commands)
    recorded_commands = {str(row.command_id) for row in commands}
    report.commands_lost = len(workload.command_ids - recorded_commands)
    applied: Counter[str] = Counter()
    handled: Counter[str] = Counter()
    applied_events: dict[str, set[str]] = {}
    for event in events:
        detail = event.detail if isinstance(event.detail, dict) else json.loads(event.detail)
        command_id = detail.get("command_id")
        if command_id is None:
            continue
        handled[command_id] += 1
        if event.type != "command_rejected":
            applied[command_id] += 1
            applied_events.setdefault(event.work_order_id, set()).add(str(event.type))
    report.applied_twice = sum(1 for count in applied.values() if count > 1)
    report.handled_twice = sum(1 for count in handled.values() if count > 1)
    # A reassignment applied (one sent before its order existed is refused) is a new version.
    applied_versions = {v for v in by_command if "reassigned" in applied_events.get(v[0], set())}
    report.not_dispatched += len(applied_versions - set(dispatched))
    for order in orders:
        done = applied_events.get(order.id, set())
        want = "in_progress" if "started" in done else "accepted" if "accepted" in done else "dispatched"
        if order.status != want:
            report.status_mismatches += 1

    lifecycle = Counter(
        json.loads(r.value).get("command_id") for r in read_topic(bootstrap, topics.lifecycle)
    )
    report.lifecycle_messages = sum(lifecycle.values())
    report.lifecycle_republished = report.lifecycle_messages - len(lifecycle)
    missing = sorted(recorded_commands - set(lifecycle))
    report.lifecycle_missing = len(missing)
    report.lifecycle_missing_ids = missing[:20]
