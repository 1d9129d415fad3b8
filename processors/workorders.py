"""Opening a work order for a routed signal: its id, deadline and first state."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from workorder_pipeline.processors.calendar import Deadline, WorkCalendar
from workorder_pipeline.processors.clocks import accept_due_at
from workorder_pipeline.processors.triage import TriageOutcome
from workorder_pipeline.schemas.inbound import ComplaintCategory
from workorder_pipeline.schemas.policy import Deadlines
from workorder_pipeline.schemas.signal import Signal, SignalKind
from workorder_pipeline.schemas.workorder import Priority, Subject, WorkOrder, WorkOrderStatus

_KIND_PREFIX = {"vehicle_alarm": "VA", "suspect": "SU", "checkin_failure": "CK", "complaint": "CP"}


def work_order_id(signal: Signal) -> str:
    """Derived from the publisher's id, so a re-delivered signal names the same order."""
    digest = hashlib.sha256(f"{signal.kind.value}\x00{signal.source_id}".encode()).hexdigest()
    return f"WO-{_KIND_PREFIX[signal.kind.value]}-{digest[:16].upper()}"


def deadline(
    signal: Signal, priority: Priority, deadlines: Deadlines, calendar: WorkCalendar, now: datetime
) -> Deadline:
    """When the order must be closed: the policy's limit (hours, or working days on the
    official calendar), never later than an upstream ticket's deadline."""
    limit = deadlines.limit(signal.kind, priority)
    if limit.hours is not None:
        due = Deadline(now + timedelta(hours=limit.hours), provisional=False)
    else:
        assert limit.working_days is not None
        due = calendar.add_working_days(now, limit.working_days, deadlines.cutoff)
    if signal.upstream_due_at is not None and signal.upstream_due_at < due.due_at:
        return Deadline(signal.upstream_due_at, provisional=False)
    return due


def open_work_order(
    outcome: TriageOutcome, deadlines: Deadlines, calendar: WorkCalendar, now: datetime
) -> WorkOrder:
    """The order triage decided to create: routed, prioritized, with its deadline."""
    signal, decision = outcome.signal, outcome.route
    due = deadline(signal, outcome.priority, deadlines, calendar, now)
    return WorkOrder(
        id=work_order_id(signal),
        kind=signal.kind,
        status=WorkOrderStatus.registered,
        unit=decision.unit,
        priority=outcome.priority,
        route_key=decision.route_key,
        created_at=now,
        due_at=due.due_at,
        deadline_provisional=due.provisional,
        working_days=deadlines.limit(signal.kind, outcome.priority).working_days,
        subject=Subject(
            plate=signal.plate,
            enterprise_id=signal.enterprise_id,
            enterprise_name=signal.enterprise_name,
            region_code=signal.region_code,
            place=signal.place,
        ),
        summary=signal.summary,
        source_ids=(signal.source_id,),
        first_seen_at=signal.occurred_at,
        last_seen_at=signal.occurred_at,
        upstream_due_at=signal.upstream_due_at,
        dedupe_key=outcome.dedupe_key,
        suggested_disposition=outcome.suggested_disposition,
        violation_key=outcome.violation_key,
        related_ids=outcome.related,
        copied_to=decision.copied_to,
        category=_category(signal),
        # Dispatched as it is stored: the acceptance clock (签收时限) starts now.
        accept_due_at=(
            accept_due_at(
                now, signal.kind, outcome.priority, deadlines.acceptance, calendar, deadlines.cutoff
            )
            if deadlines.acceptance is not None
            else None
        ),
    )


def _category(signal: Signal) -> ComplaintCategory | None:
    """A complaint's category, as its ticket gave it (the contract's enum: validated at intake)."""
    if signal.kind is not SignalKind.complaint:
        return None
    value = signal.attributes.get("category")
    return ComplaintCategory(value) if isinstance(value, str) else None
