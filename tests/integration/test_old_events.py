"""Events too old at receipt, on SQLite and PostgreSQL: every sample received 500 days after
it happened. Complaints make their orders, marked received late in the audit trail; the
other signals are recorded as ``stale`` suppressions; nothing is dead-lettered; re-delivered
later, nothing is recorded twice; ``wo rules replay`` keeps them stale.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.integration.pipeline_support import REPO_ROOT, SAMPLES, file_lines
from tests.integration.test_repository import VALID_SAMPLES
from workorder_pipeline.config.settings import Topics
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.processors.triage import Action, SuppressionReason
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.services.intake import InboundMessage, Intake
from workorder_pipeline.services.policy_files import load_policy, load_reference
from workorder_pipeline.services.rules import replay_stored
from workorder_pipeline.storage.repository import WorkOrderRepository
from workorder_pipeline.storage.tables import suppressed_signal, work_order_event, work_order_source

pytestmark = pytest.mark.integration

POLICY = load_policy(REPO_ROOT / "policy")
REFERENCE = load_reference(REPO_ROOT / "policy")
RECEIVED = datetime(2028, 4, 5, 9, 0, 0, 250000, tzinfo=UTC)  # the samples are of November 2026


def samples() -> list[InboundMessage]:
    return [
        InboundMessage(topic, 0, offset, None, line)
        for name, topic in VALID_SAMPLES.items()
        for offset, line in enumerate(file_lines(SAMPLES / name))
    ]


def test_old_samples_make_late_complaint_orders_and_stale_records_only(engine: Engine) -> None:
    repository = WorkOrderRepository(engine)
    intake = Intake(compile_policy(POLICY), repository, Topics().inbound(), reference=lambda: REFERENCE)
    result = intake.handle(samples(), RECEIVED)
    assert result.dead_letters == []
    assert {order.kind.value for order in result.created} == {"complaint"}
    assert result.late == {SignalKind.complaint: len(result.created) + sum(result.merged.values())}
    non_complaints = sum(n for kind, n in result.received.items() if kind.value != "complaint")
    assert result.suppressed == {SuppressionReason.stale: non_complaints - sum(result.redelivered.values())}
    with engine.connect() as conn:
        registered = conn.execute(
            sa.select(work_order_event.c.detail).where(work_order_event.c.type == "registered")
        ).scalars()
        assert [detail["received_late"] for detail in registered] == [True] * len(result.created)
        reasons = conn.execute(sa.select(suppressed_signal.c.reason)).scalars().all()
    assert set(reasons) == {"stale"} and len(reasons) == result.suppressed[SuppressionReason.stale]

    again = intake.handle(samples(), RECEIVED + timedelta(days=1))
    assert again.created == [] and again.suppressed == {} and again.dead_letters == []
    assert sum(again.redelivered.values()) == len(samples())

    window = (RECEIVED - timedelta(seconds=1), RECEIVED + timedelta(seconds=1))
    report = replay_stored(repository, *window, POLICY, POLICY, REFERENCE, RECEIVED + timedelta(days=2))
    assert report.current[Action.suppress] == report.candidate[Action.suppress] == len(reasons)
    assert report.changes == []


def _region_in(kind: str, payload: dict[str, Any]) -> str | None:
    """The region a signal's payload gives, where the contracts put it, computed here."""
    if kind == "vehicle_alarm":
        return str(payload["location"]["region_code"])
    if kind == "complaint":
        return (payload.get("subject") or {}).get("region_code")
    if kind == "suspect":
        totals: dict[str, tuple[int, int]] = {}
        for c in payload.get("checkpoints") or []:
            total, peak = totals.get(c["region_code"], (0, 0))
            totals[c["region_code"]] = (total + c["passes"], max(peak, c["passes"]))
        return min(totals, key=lambda r: (-totals[r][0], -totals[r][1], r)) if totals else None
    return None


def test_every_stored_signal_keeps_its_region_for_the_monthly_report(engine: Engine) -> None:
    intake = Intake(
        compile_policy(POLICY), WorkOrderRepository(engine), Topics().inbound(), reference=lambda: REFERENCE
    )
    intake.handle(samples(), RECEIVED)
    with engine.connect() as conn:
        stored = [
            (row.kind, row.payload, row.region_code)
            for table in (work_order_source, suppressed_signal)
            for row in conn.execute(sa.select(table.c.kind, table.c.payload, table.c.region_code))
        ]
    assert {kind for kind, _, _ in stored} == {kind.value for kind in SignalKind}
    assert [region for _, _, region in stored] == [_region_in(kind, payload) for kind, payload, _ in stored]
    assert any(region for _, _, region in stored)
