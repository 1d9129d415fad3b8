"""An SMS receiver of several phones against a real gateway on 127.0.0.1 that fails for one
of them: each phone gets the message exactly once however many attempts it takes, across
workers that restart between attempts or are killed mid-send (the phones that have it are
in the database, not in a worker), and a phone listed twice is one phone. SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.notify_world import LATER, World, attempt_log, escalate
from tests.integration.notify_world import world as world  # the fixture
from workorder_pipeline.schemas.notifications import AttemptOutcome, NotificationPolicy
from workorder_pipeline.services.notifications import recipient_key
from workorder_pipeline.storage.api_store import ApiStore
from workorder_pipeline.storage.database import create_engine
from workorder_pipeline.storage.tables import notification_recipient

pytestmark = pytest.mark.integration

PHONES = ["13800000001", "13800000002", "13800000003"]
ROOT = Path(__file__).resolve().parents[2]


def _policy(world: World, phones: list[str]) -> NotificationPolicy:
    policy = world.policy(route={"routes": [{"match": {"level": ["leadership"]}, "receivers": ["sms"]}]})
    document: dict[str, Any] = policy.model_dump(mode="json", by_alias=True)
    sms = next(r for r in document["receivers"] if r["id"] == "sms")
    sms["via"]["phones"] = phones
    return NotificationPolicy.model_validate(document)


def _restarted(world: World, policy: NotificationPolicy) -> list[AttemptOutcome]:
    """One run of a worker that starts afresh: its own engine, nothing remembered."""
    engine = create_engine(world.engine.url.render_as_string(hide_password=False))
    try:
        return [s.outcome for s in world.run(world.notifier(policy, engine))]
    finally:
        engine.dispose()


def _taken(world: World) -> Counter[str]:
    """Messages the gateway took, per phone."""
    return Counter(world.robots.sms_taken)


def test_a_phone_the_gateway_fails_for_is_retried_alone_and_each_phone_gets_it_once(world: World) -> None:
    policy = _policy(world, PHONES)
    order_id = escalate(world)
    world.clock.now = LATER.astimezone(UTC)
    world.robots.sms_failing = {PHONES[1]}

    assert _restarted(world, policy) == [AttemptOutcome.unreachable]
    # The failing phone does not stop the one after it.
    assert [r.json()["mobile"] for r in world.robots.of("/sms")] == PHONES
    world.clock.now += timedelta(seconds=30)  # the backoff; still failing: only that phone again
    assert _restarted(world, policy) == [AttemptOutcome.unreachable]
    assert [r.json()["mobile"] for r in world.robots.of("/sms")][3:] == [PHONES[1]]

    world.robots.sms_failing = set()  # the carrier is back
    world.clock.now += timedelta(seconds=60)
    assert _restarted(world, policy) == [AttemptOutcome.delivered]
    world.clock.now += timedelta(minutes=30)
    assert _restarted(world, policy) == []
    assert _taken(world) == Counter(PHONES)  # each phone exactly once
    assert len(world.robots.of("/sms")) == 5  # three, the failed one twice more: nothing else
    assert attempt_log(world, order_id)["sms"] == [
        ("unreachable", "503"),
        ("unreachable", "503"),
        ("delivered", "0"),
    ]
    with world.engine.connect() as conn:
        recorded = conn.execute(
            sa.select(notification_recipient.c.recipient, notification_recipient.c.attempt)
        ).all()
    assert sorted(recorded) == sorted(
        [(recipient_key(PHONES[0]), 1), (recipient_key(PHONES[2]), 1), (recipient_key(PHONES[1]), 3)]
    )
    assert not any(phone in str(recorded) for phone in PHONES)  # digests, not phones


def test_a_phone_listed_twice_gets_the_message_once(world: World) -> None:
    policy = _policy(world, [PHONES[0], PHONES[0], PHONES[1]])
    escalate(world)
    world.clock.now = LATER.astimezone(UTC)
    assert _restarted(world, policy) == [AttemptOutcome.delivered]
    assert _taken(world) == Counter(PHONES[:2])


def test_a_worker_killed_mid_sms_leaves_the_phones_that_had_it_alone(
    world: World, database_url: str, tmp_path: Path
) -> None:
    """SIGKILL while the gateway holds the second phone's request: the first phone's
    delivery was recorded, so the worker after it sends to the second and third only. The
    second may get it twice (the gateway took it, the dead worker never knew): the
    at-least-once window, one phone wide."""
    policy = _policy(world, PHONES)
    order_id = escalate(world)
    now = LATER.astimezone(UTC)
    config = tmp_path / "worker.json"
    document = {
        "database_url": database_url,
        "policy": policy.model_dump(mode="json", by_alias=True),
        "env": world.env,
        "now": now.isoformat(),
    }
    config.write_text(json.dumps(document), encoding="utf-8")
    world.robots.hold_phone = PHONES[1]
    world.robots.hold.set()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.notify_worker", str(config)], cwd=ROOT, env=env
    )
    try:
        assert world.robots.holding.wait(60), "the worker never reached the second phone"
        worker.send_signal(signal.SIGKILL)
        assert worker.wait(30) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
    world.robots.hold.clear()
    world.robots.release.set()  # the gateway takes the held message: the dead worker never knew

    world.clock.now = now + timedelta(minutes=2)  # the dead worker's lease has expired
    assert _restarted(world, policy) == [AttemptOutcome.delivered]
    world.clock.now = now + timedelta(minutes=30)
    assert _restarted(world, policy) == []
    assert _taken(world) == Counter({PHONES[0]: 1, PHONES[1]: 2, PHONES[2]: 1})
    assert [outcome for outcome, _ in attempt_log(world, order_id)["sms"]] == ["interrupted", "delivered"]


def test_a_gateway_hanging_on_every_phone_ends_the_send_inside_its_lease_and_the_rest_get_it_next(
    world: World,
) -> None:
    """Each hanging request ends at its own timeout (0.5 s here), but nine hanging phones
    one after the other would hold the notification past its lease (4 s here), when another
    worker may claim it and send it again. The phones not tried by the send's deadline are
    left to the next attempt, which sends only to the phones without it."""
    phones = [f"1390000000{n}" for n in range(10)]
    policy = _policy(world, phones)
    order_id = escalate(world)
    world.clock.now = LATER.astimezone(UTC)
    world.robots.sms_hanging = set(phones[1:])  # takes the first at once, then hangs
    lease = timedelta(seconds=4)
    notifier = world.notifier(policy, timeout_s=0.5, lease=lease)
    notifier.plan(world.clock())

    started = time.monotonic()
    sent = asyncio.run(notifier.deliver(world.clock))
    took = time.monotonic() - started

    assert [s.outcome for s in sent] == [AttemptOutcome.unreachable]
    assert took < lease.total_seconds(), f"the attempt ended {took:.1f} s after its claim"
    tried = [r.json()["mobile"] for r in world.robots.of("/sms")]
    assert 2 <= len(tried) < len(phones) and tried == phones[: len(tried)]  # in order, once each
    [shown] = ApiStore(world.engine).notifications(order_id)
    assert shown["status"] == "pending" and shown["lease_until"] is None
    assert shown["send_after"] == world.clock.now + timedelta(seconds=30)  # retried as any failure
    [first] = shown["attempt_log"]
    assert first["outcome"] == "unreachable"
    assert f"not tried by the send's deadline ({len(phones) - len(tried)})" in first["detail"]

    world.robots.sms_hanging = set()  # the gateway is back
    world.robots.release.set()  # the hung requests end, unanswered: none was taken
    world.clock.now += timedelta(seconds=30)
    assert _restarted(world, policy) == [AttemptOutcome.delivered]
    assert [r.json()["mobile"] for r in world.robots.of("/sms")][len(tried) :] == phones[1:]
    world.clock.now += timedelta(minutes=30)
    assert _restarted(world, policy) == []
    assert _taken(world) == Counter(phones)  # each phone exactly once
    assert [outcome for outcome, _ in attempt_log(world, order_id)["sms"]] == ["unreachable", "delivered"]
