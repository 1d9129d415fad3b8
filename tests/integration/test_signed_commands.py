"""CommandHandler.handle and signatures, on SQLite and PostgreSQL: what a refusal leaves behind.

The broker side (``wo run``, the lifecycle topic, the metrics) is in
test_signed_commands_on_broker.py; here the database's part, in one transaction per batch.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.integration.pipeline_support import REPO_ROOT, SAMPLES, file_lines
from workorder_pipeline.config.settings import Topics
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.schemas.senders import SenderKeys
from workorder_pipeline.schemas.workorder import WorkOrder
from workorder_pipeline.services.commands import CommandHandler
from workorder_pipeline.services.intake import InboundMessage, Intake
from workorder_pipeline.services.policy_files import load_policy
from workorder_pipeline.services.sender_keys import SigningKey, new_signing_key, signed_headers
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.repository import WorkOrderRepository

pytestmark = [pytest.mark.integration]

POLICY = load_policy(REPO_ROOT / "policy")
TOPICS = Topics()
SENDER = new_signing_key("squad-system-2026")
STRANGER = new_signing_key("stranger-2026")
SENDERS = SenderKeys().with_key(SENDER.public("squad system", ("*",)))


@pytest.fixture
def repository(database_url: str) -> Iterator[WorkOrderRepository]:
    migrate(database_url)
    engine = create_engine(database_url)
    try:
        yield WorkOrderRepository(engine)
    finally:
        engine.dispose()


def dispatched_order(repository: WorkOrderRepository, now: datetime) -> WorkOrder:
    alarm = {**json.loads(file_lines(SAMPLES / "vehicle-alarms.jsonl")[0]), "alarm_id": uuid.uuid4().hex}
    intake = Intake(compile_policy(POLICY), repository, TOPICS.inbound())
    message = InboundMessage(TOPICS.vehicle_alarms, 0, 0, None, json.dumps(alarm).encode())
    (order,) = intake.handle([message], now).created
    intake.dispatched([order], now)
    return order


def message(document: dict[str, Any], offset: int, key: SigningKey | None) -> InboundMessage:
    value = json.dumps(document, ensure_ascii=False).encode()
    headers = tuple(signed_headers(key, value)) if key is not None else ()
    return InboundMessage(TOPICS.commands, 0, offset, None, value, None, headers)


def accept(order_id: str, unit: str, now: datetime) -> dict[str, Any]:
    return {
        "schema": "workorder-command/1",
        "command_id": f"cmd-{uuid.uuid4().hex}",
        "work_order_id": order_id,
        "action": "accept",
        "actor": {"unit": unit, "officer_ids": ["JS0682-0117"]},
        "at": now.isoformat(),
    }


def test_a_forged_command_is_audited_in_its_batch_and_its_id_stays_free(
    repository: WorkOrderRepository,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    order = dispatched_order(repository, now)
    handler = CommandHandler(repository, frozenset(POLICY.units.ids()), POLICY.lifecycle, SENDERS)
    forged = accept(order.id, order.unit, now)

    result = handler.handle([message(forged, 0, STRANGER)], now)

    assert [(o.outcome, o.refusal.code if o.refusal else None) for o in result.outcomes] == [
        ("rejected", "unknown_key")
    ]
    assert result.rejected == {"unknown_key": 1} and not result.applied
    assert repository.command_outcome(forged["command_id"]) is None
    stored = repository.get(order.id)
    assert stored is not None and stored.status.value == "dispatched"
    last = repository.history(order.id)[-1]
    assert (last["type"], last["detail"]["code"], last["detail"]["command_id"]) == (
        "command_rejected",
        "unknown_key",
        forged["command_id"],
    )
    (announced,) = [json.loads(row["payload"]) for row in handler.outbox()]
    assert (announced["event"], announced["detail"]["code"], announced["status"]) == (
        "command_rejected",
        "unknown_key",
        "dispatched",
    )

    again = handler.handle([message(forged, 1, SENDER)], now)
    assert [o.outcome for o in again.outcomes] == ["applied"]
    assert (repository.command_outcome(forged["command_id"]) or {}).get("outcome") == "applied"


def test_an_unsigned_command_for_no_order_is_announced_without_touching_any_history(
    repository: WorkOrderRepository,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    handler = CommandHandler(repository, frozenset(POLICY.units.ids()), POLICY.lifecycle, SENDERS)
    unsigned = accept("WO-NO-SUCH-ORDER", "squad-1", now)

    result = handler.handle([message(unsigned, 0, None)], now)

    assert result.rejected == {"unsigned": 1}
    assert repository.history("WO-NO-SUCH-ORDER") == []
    assert repository.command_outcome(unsigned["command_id"]) is None
    (announced,) = [json.loads(row["payload"]) for row in handler.outbox()]
    assert (announced["event"], announced["detail"]["code"], announced["status"]) == (
        "command_rejected",
        "unsigned",
        None,
    )


def test_a_forged_command_set_aside_as_unprocessable_does_not_use_up_its_id(
    repository: WorkOrderRepository,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    order = dispatched_order(repository, now)
    handler = CommandHandler(repository, frozenset(POLICY.units.ids()), POLICY.lifecycle, SENDERS)
    forged, genuine = accept(order.id, order.unit, now), accept(order.id, order.unit, now)

    handler.unprocessable(message(forged, 0, STRANGER), "DataError", now)
    handler.unprocessable(message(genuine, 1, SENDER), "DataError", now)

    assert repository.command_outcome(forged["command_id"]) is None
    assert (repository.command_outcome(genuine["command_id"]) or {}).get("outcome") == "unprocessable"
