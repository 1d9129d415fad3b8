"""A worker SIGKILLed mid-send: no notification is lost; the one in flight may reach its
receiver twice (with the same notification id), the at-least-once window every channel
has (README, "Notifications"); none is sent twice otherwise."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, timedelta
from pathlib import Path

import pytest

from tests.integration.notify_world import LATER, World, escalate
from tests.integration.notify_world import world as world  # the fixture
from workorder_pipeline.storage.api_store import ApiStore

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_a_worker_killed_mid_send_loses_nothing(world: World, database_url: str, tmp_path: Path) -> None:
    policy = world.policy(
        route={"routes": [{"match": {"level": ["leadership"]}, "receivers": ["hook", "wecom"]}]}
    )
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
    world.robots.hold.set()  # the receiver takes the request and does not answer yet
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.notify_worker", str(config)], cwd=ROOT, env=env
    )
    try:
        assert world.robots.arrived.wait(60), "the worker never sent"
        worker.send_signal(signal.SIGKILL)
        assert worker.wait(30) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
    world.robots.hold.clear()
    world.robots.release.set()
    (in_flight,) = world.robots.received  # the platform has it; the worker never knew
    assert [n["status"] for n in ApiStore(world.engine).notifications(order_id)] == ["pending", "pending"]

    # The worker claimed only the one in flight: the other goes now; the dead worker's
    # lease on the first still holds.
    world.clock.now = now + timedelta(minutes=1)
    assert len(world.run(world.notifier(policy))) == 1
    world.clock.now = now + timedelta(minutes=2)  # the lease expired: sent again
    assert len(world.run(world.notifier(policy))) == 1
    world.clock.now = now + timedelta(minutes=30)
    assert world.run(world.notifier(policy)) == []

    shown = ApiStore(world.engine).notifications(order_id)
    assert {n["status"] for n in shown} == {"sent"}
    logs = sorted([a["outcome"] for a in n["attempt_log"]] for n in shown)
    assert logs == [["delivered"], ["interrupted", "delivered"]]
    paths = [r.path for r in world.robots.received]
    assert paths.count(in_flight.path) == 2 and len(paths) == 3  # the other one once
    if in_flight.path == "/hook":  # the webhook's receiver can drop the repeat by its id
        ids = [r.headers["x-wo-notification-id"] for r in world.robots.of("/hook")]
        assert ids[0] == ids[1]
