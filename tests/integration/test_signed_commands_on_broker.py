"""Signed commands over Kafka: ``wo run`` applies only what a listed, active key signed.

Each test has its own ``wo run`` process (PostgreSQL), topics and policy directory: a copy
of policy/ whose senders.yaml lists the tests' keys (services.sender_keys.policy_dir_with_sender).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from kafka import KafkaProducer

from tests.integration.pipeline_support import metric_samples, wait_for
from tests.integration.test_commands_on_broker import (
    CommandWorker,
    Json,
    command,
    encode,
    other_squad,
    unit_ids,
    worker,
)
from tests.integration.test_intake_on_broker import TIMEOUT_S
from workorder_pipeline.processors.command_signing import SignatureRefusal
from workorder_pipeline.schemas.workorder import COMMAND_CENTER
from workorder_pipeline.services.sender_keys import (
    SigningKey,
    new_signing_key,
    policy_dir_with_sender,
    signed_headers,
)

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

__all__ = ["unit_ids", "worker"]  # fixtures, shared with the other command tests

Headers = list[tuple[str, bytes]]


def trust(worker: CommandWorker, sender: str, acts_as: tuple[str, ...]) -> SigningKey:
    """A new key of ``sender`` listed in the worker's policy directory (before it runs)."""
    target = worker.tmp / f"policy-{len(list(worker.tmp.glob('policy-*')))}"
    key = policy_dir_with_sender(worker.policy_dir, target, sender, acts_as)
    worker.policy_dir = target
    worker.env["WO_POLICY_DIR"] = str(target)
    return key


def retire(policy_dir: Path, key_id: str) -> None:
    path = policy_dir / "senders.yaml"
    document = yaml.safe_load(path.read_text())
    for entry in document["senders"]:
        if entry["key_id"] == key_id:
            entry["retired"] = True
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def publish(worker: CommandWorker, value: bytes, headers: Headers, key: bytes) -> None:
    producer = KafkaProducer(bootstrap_servers=worker.bootstrap, acks="all", request_timeout_ms=10_000)
    try:
        producer.send(worker.commands_topic, key=key, value=value, headers=headers).get(timeout=10)
    finally:
        producer.close(timeout=5)


def altered(key: SigningKey) -> Callable[[Json], tuple[bytes, Headers]]:
    def sent(document: Json) -> tuple[bytes, Headers]:
        headers = signed_headers(key, encode(document))
        return encode({**document, "note": "altered in transit"}), headers

    return sent


def signed_with(key: SigningKey | None) -> Callable[[Json], tuple[bytes, Headers]]:
    def sent(document: Json) -> tuple[bytes, Headers]:
        return encode(document), signed_headers(key, encode(document)) if key is not None else []

    return sent


@pytest.mark.parametrize("code", list(SignatureRefusal))
def test_a_command_whose_signature_does_not_let_it_act_is_refused_and_its_id_stays_free(
    worker: CommandWorker, unit_ids: frozenset[str], code: SignatureRefusal
) -> None:
    retired = trust(worker, "old system", ("*",))
    squad_key = trust(worker, "squad system", (sorted(unit_ids - {COMMAND_CENTER})[0],))
    retire(worker.policy_dir, retired.key_id)
    process = worker.run()
    dispatched = worker.open_order()
    order_id, unit = dispatched["work_order_id"], dispatched["squad"]
    now = datetime.now(UTC).replace(microsecond=0)
    if code is SignatureRefusal.beyond_rights:
        # A squad's system acting as the command center.
        document = command(order_id, "reassign", COMMAND_CENTER, now, to_unit=other_squad(unit_ids, unit))
        expected_event = "reassigned"
    else:
        document = command(order_id, "accept", unit, now)
        expected_event = "accepted"
    forge = {
        SignatureRefusal.unsigned: signed_with(None),
        SignatureRefusal.unknown_key: signed_with(new_signing_key("nobody-knows")),
        SignatureRefusal.retired_key: signed_with(retired),
        SignatureRefusal.bad_signature: altered(worker.key),
        SignatureRefusal.beyond_rights: signed_with(squad_key),
    }[code]
    value, headers = forge(document)
    publish(worker, value, headers, order_id.encode())

    (refused,) = worker.wait_lifecycle(order_id, 1)
    assert (refused["event"], refused["command_id"], refused["detail"]["code"]) == (
        "command_rejected",
        document["command_id"],
        code.value,
    )
    worker.wait_commands_handled()
    assert worker.order(order_id)["status"] == "dispatched", "a refused command was applied"
    audit = worker.audit(order_id)[-1]
    assert (audit["type"], audit["detail"]["command_id"], audit["detail"]["code"]) == (
        "command_rejected",
        document["command_id"],
        code.value,
    )
    _orders, _events, processed = worker.snapshot()
    assert document["command_id"] not in {row["command_id"] for row in processed}
    expected = {(("reason", code.value),): 1.0}
    wait_for(
        lambda: metric_samples(process.metrics_text(), "wo_commands_rejected_total") == expected,
        TIMEOUT_S,
        f"wo_commands_rejected_total to be {expected}",
        describe=worker.describe,
    )

    # The same command_id, properly signed, is applied.
    worker.send_commands(document)
    events = worker.wait_lifecycle(order_id, 2)
    assert (events[1]["event"], events[1]["command_id"]) == (expected_event, document["command_id"])


def test_a_command_signed_by_either_active_key_of_a_sender_in_rotation_is_applied(
    worker: CommandWorker,
) -> None:
    old = trust(worker, "squad system", ("*",))
    new = trust(worker, "squad system", ("*",))
    worker.run()
    dispatched = worker.open_order()
    order_id, unit = dispatched["work_order_id"], dispatched["squad"]
    now = datetime.now(UTC).replace(microsecond=0)
    accept, start = command(order_id, "accept", unit, now), command(order_id, "start", unit, now)
    worker.send(worker.commands_topic, [(order_id.encode(), encode(accept))], signed_by=old)
    worker.send(worker.commands_topic, [(order_id.encode(), encode(start))], signed_by=new)

    events = worker.wait_lifecycle(order_id, 2)
    assert [(e["event"], e["command_id"]) for e in events] == [
        ("accepted", accept["command_id"]),
        ("started", start["command_id"]),
    ]
    assert worker.order(order_id)["status"] == "in_progress"


def test_the_signature_covers_the_object_not_its_serialization(worker: CommandWorker) -> None:
    """Re-serialized in transit (other key order, escaped non-ASCII): still the command signed."""
    worker.run()
    dispatched = worker.open_order()
    order_id, unit = dispatched["work_order_id"], dispatched["squad"]
    accept = command(order_id, "accept", unit, datetime.now(UTC).replace(microsecond=0), note="到场核查")
    headers = signed_headers(worker.key, encode(accept))
    reserialized = json.dumps(dict(reversed(list(accept.items()))), ensure_ascii=True, indent=1).encode()
    publish(worker, reserialized, headers, order_id.encode())

    (accepted,) = worker.wait_lifecycle(order_id, 1)
    assert (accepted["event"], accepted["command_id"]) == ("accepted", accept["command_id"])
