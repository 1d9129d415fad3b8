"""Exactly once: what a re-delivered message publishes, told apart from a publisher's re-send.

In exactly-once mode a batch's outputs commit with its input offsets in one Kafka
transaction, so a message that comes again from the very position its order was registered
from is one whose outputs never became visible: its order must go out again. The same
publisher id at another position is a re-send, which publishes nothing. Real databases,
both of them; the Kafka side is the crash test's (tests/crash).
"""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.integration.pipeline_support import REPO_ROOT, clean_env
from tests.integration.test_repository import T0, T1, T2, TOPICS, alarm_message
from workorder_pipeline.config.settings import ProcessingGuarantee
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.schemas.workorder import WorkOrderStatus
from workorder_pipeline.services.intake import Intake
from workorder_pipeline.services.policy_files import load_policy, load_reference
from workorder_pipeline.storage.repository import WorkOrderRepository
from workorder_pipeline.wo.embedded_broker import EmbeddedBroker, free_port

pytestmark = pytest.mark.integration


def intake_with(engine: Engine, guarantee: ProcessingGuarantee) -> Intake:
    reference = load_reference(REPO_ROOT / "policy")
    return Intake(
        compile_policy(load_policy(REPO_ROOT / "policy")),
        WorkOrderRepository(engine),
        TOPICS.inbound(),
        reference=lambda: reference,
        guarantee=guarantee,
    )


def test_exactly_once_publishes_a_redelivered_message_again_and_a_resend_not(engine: Engine) -> None:
    intake = intake_with(engine, ProcessingGuarantee.exactly_once)
    first = alarm_message("EOS-1", 1, offset=40)
    created = intake.handle([first], T0)
    assert [order.id for order in created.to_dispatch] == [created.created[0].id]
    # Marked dispatched in the batch's own transaction: nothing is left for a start-up re-publish.
    assert intake.undispatched() == []
    stored = WorkOrderRepository(engine).get(created.created[0].id)
    assert stored is not None and stored.status is WorkOrderStatus.dispatched

    redelivered = intake.handle([first], T1)
    assert [order.id for order in redelivered.to_dispatch] == [created.created[0].id]
    assert redelivered.created == [] and redelivered.redelivered

    resent = intake.handle([replace(first, offset=41)], T2)
    assert resent.to_dispatch == [] and resent.created == []


def test_exactly_once_does_not_publish_an_order_again_for_a_merged_signal(engine: Engine) -> None:
    intake = intake_with(engine, ProcessingGuarantee.exactly_once)
    first = alarm_message("EOS-A", 7, offset=1)
    repeat = alarm_message("EOS-B", 7, offset=2)  # same plate and alarm: merged into the first
    outcome = intake.handle([first, repeat], T0)
    assert len(outcome.created) == 1 and sum(outcome.merged.values()) == 1
    again = intake.handle([repeat], T1)  # re-delivered: it made no order, so it publishes none
    assert again.to_dispatch == []


def test_at_least_once_publishes_again_only_what_was_never_marked_dispatched(engine: Engine) -> None:
    intake = intake_with(engine, ProcessingGuarantee.at_least_once)
    first = alarm_message("ALO-1", 2, offset=5)
    created = intake.handle([first], T0)
    assert intake.handle([first], T1).to_dispatch == created.created  # stored, never published
    intake.dispatched(created.to_dispatch, T1)
    assert intake.handle([first], T2).to_dispatch == []


def test_exactly_once_on_a_broker_without_transactions_stops_at_start_with_the_reason(
    tansu_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    env = clean_env(
        WO_KAFKA_BOOTSTRAP=tansu_broker.bootstrap,
        WO_PROCESSING_GUARANTEE="exactly_once",
        WO_DATABASE_URL=f"sqlite:///{tmp_path}/wo.db",
        WO_DATA_DIR=str(tmp_path),
        WO_METRICS_PORT=str(free_port()),
    )
    done = subprocess.run(
        [str(REPO_ROOT / ".venv" / "bin" / "wo"), "run"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 3, done.stderr[-2000:]
    assert "exactly_once needs a broker with transactions" in done.stderr, done.stderr[-2000:]


def test_exactly_once_names_the_input_partition_each_order_commits_with(engine: Engine) -> None:
    """An order goes out in the Kafka transaction of the partition it was registered from:
    the partition whose batch comes again if that transaction never commits."""
    intake = intake_with(engine, ProcessingGuarantee.exactly_once)
    on_two = replace(alarm_message("EOS-P2", 21, offset=3), partition=2)
    on_five = replace(alarm_message("EOS-P5", 22, offset=8), partition=5)
    merged = replace(alarm_message("EOS-P5b", 22, offset=9), partition=1)  # same vehicle and alarm
    first = intake.handle([on_two, on_five, merged], T0)
    assert sorted(first.origins.values()) == [(TOPICS.vehicle_alarms, 2), (TOPICS.vehicle_alarms, 5)]
    assert set(first.origins) == {order.id for order in first.to_dispatch}
    from_five = next(order_id for order_id, (_, p) in first.origins.items() if p == 5)

    again = intake.handle([merged, on_five], T1)  # re-delivered: only the registering one publishes
    assert [order.id for order in again.to_dispatch] == [from_five]
    assert again.origins == {from_five: (TOPICS.vehicle_alarms, 5)}
