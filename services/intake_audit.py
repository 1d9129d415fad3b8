"""What the intake keeps of a triage decision: its audit detail and a suppressed signal's row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from workorder_pipeline.processors.admission import EVENT_TIME_STEP
from workorder_pipeline.processors.intake import EventTime
from workorder_pipeline.processors.triage import TriageOutcome
from workorder_pipeline.schemas.signal import Signal


def audit_detail(outcome: TriageOutcome, position: str, due_at: datetime | None = None) -> dict[str, Any]:
    """The triage decision as the audit trail keeps it: every step with its reason."""
    detail: dict[str, Any] = {
        "source": position,
        "source_id": outcome.signal.source_id,
        "action": outcome.action.value,
        "unit": outcome.route.unit,
        "priority": outcome.priority.value,
        "route_key": outcome.route.route_key,
        "route_path": list(outcome.route.path),
        "steps": [{"step": s.name, "outcome": s.outcome, "reason": s.reason} for s in outcome.steps],
    }
    if any(s.name == EVENT_TIME_STEP and s.outcome == EventTime.late for s in outcome.steps):
        # Countable in the audit trail without reading the steps.
        detail["received_late"] = True
    if due_at is not None:
        detail["due_at"] = due_at.isoformat()
    return detail


def suppressed_row(signal: Signal, outcome: TriageOutcome, payload: dict[str, Any]) -> dict[str, Any]:
    assert outcome.suppression is not None
    return {
        "kind": signal.kind.value,
        "reason": outcome.suppression.reason.value,
        "rule_key": outcome.suppression.rule_key,
        "detail": outcome.suppression.detail,
        "unit": outcome.route.unit,
        "route_key": outcome.route.route_key,
        "occurred_at": signal.occurred_at,
        "violation_key": outcome.violation_key,
        "payload": payload,
        "region_code": signal.region_code,
    }
