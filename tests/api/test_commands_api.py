"""Lifecycle commands through the API: published on the broker, decided by the worker's
command handler (the conftest's consumer thread), answered with the verdict."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.api.conftest import OFFICERS, REPO_ROOT, ApiWorld, FlakyApi, api_world
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import COMMAND_CENTER
from workorder_pipeline.wo.embedded_broker import HOST, free_port
from workorder_pipeline.wo.kafka_cluster import KafkaCluster

pytestmark = pytest.mark.integration


def new_id() -> str:
    return f"it-{uuid.uuid4().hex}"


def applied(response: httpx.Response, status: str) -> dict[str, Any]:
    """The body of a 200 'applied' answer whose order is now ``status``."""
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert (body["outcome"], body["order"]["status"]) == ("applied", status), body
    return body


def refused(response: httpx.Response, status_code: int, outcome: str) -> dict[str, Any]:
    assert response.status_code == status_code, response.text
    body: dict[str, Any] = response.json()
    assert body["outcome"] == outcome, body
    return body


def sent(world: ApiWorld) -> int:
    return sum(world.topic_end_offsets().values())


def work_to_feedback(world: ApiWorld, who: str, order_id: str) -> None:
    applied(world.command(who, order_id, action="accept"), "accepted")
    applied(world.command(who, order_id, action="start"), "in_progress")
    feedback = world.command(
        who, order_id, action="feedback", officer_ids=OFFICERS, disposition="rectification_ordered"
    )
    applied(feedback, "feedback_submitted")


def test_a_squad_works_a_complaint_through_to_closed(api: ApiWorld) -> None:
    order = api.claim("squad-1", SignalKind.complaint)
    on_topic = sent(api)
    now = datetime.now(UTC).replace(microsecond=0)
    ids = [new_id() for _ in range(4)]
    steps: list[tuple[dict[str, Any], str]] = [
        ({"action": "accept", "officer_ids": OFFICERS[:1]}, "accepted"),
        ({"action": "start"}, "in_progress"),
        (
            {
                "action": "feedback",
                "officer_ids": OFFICERS,
                "disposition": "rectification_ordered",
                "note": "已责令整改，出租车司机接受教育",
            },
            "feedback_submitted",
        ),
        (
            {
                "action": "close",
                "officer_ids": OFFICERS,
                "callback": {"result": "satisfied", "at": (now + timedelta(minutes=50)).isoformat()},
            },
            "closed",
        ),
    ]
    for command_id, (body, status) in zip(ids, steps, strict=True):
        answer = applied(api.command("squad-1", order.id, command_id=command_id, **body), status)
        assert answer["command_id"] == command_id
    assert sent(api) == on_topic + 4, "each command goes through the commands topic"

    shown = api.client.get(f"/orders/{order.id}", headers=api.headers("squad-1")).json()
    assert shown["order"]["status"] == "closed"
    assert shown["order"]["disposition"] == "rectification_ordered"
    # The samples' complaints carry their tickets' deadlines (late November 2026): on time or
    # late depends on the day the test runs, and the order says which by its own due_at.
    closed_at, due_at = (datetime.fromisoformat(shown["order"][f]) for f in ("closed_at", "due_at"))
    assert shown["order"]["closed_on_time"] is (closed_at <= due_at)
    history = shown["history"]
    assert [e["type"] for e in history] == [
        "registered",
        "dispatched",
        "accepted",
        "started",
        "feedback_submitted",
        "closed",
    ]
    assert [(e["actor"], e["detail"]["command_id"]) for e in history[2:]] == [("squad-1", i) for i in ids]
    assert history[4]["detail"]["officer_ids"] == sorted(OFFICERS)
    assert history[5]["detail"]["callback"] == "satisfied"
    status = api.client.get(f"/commands/{ids[3]}", headers=api.headers("squad-1"))
    assert (status.status_code, status.json()["outcome"]) == (200, "applied")


def test_a_command_in_the_wrong_state_is_409_invalid_state(api: ApiWorld) -> None:
    order = api.claim("squad-1", SignalKind.vehicle_alarm)
    for action in ("start", "close", "feedback"):
        command_id = new_id()
        body = refused(
            api.command(
                "squad-1",
                order.id,
                command_id=command_id,
                action=action,
                officer_ids=OFFICERS,
                disposition="unfounded",
            ),
            409,
            "invalid_state",
        )
        assert "dispatched" in body["reason"]
        assert body["order"]["status"] == "dispatched"
        again = api.client.get(f"/commands/{command_id}", headers=api.headers("squad-1"))
        assert (again.status_code, again.json()["outcome"]) == (409, "invalid_state")
    history = api.events(order.id)
    assert [e["type"] for e in history] == ["registered", "dispatched"] + ["command_rejected"] * 3
    assert [e["detail"]["code"] for e in history[2:]] == ["invalid_state"] * 3


def test_feedback_by_one_officer_is_422_too_few_officers(api: ApiWorld) -> None:
    order = api.claim("squad-1", SignalKind.vehicle_alarm)
    applied(api.command("squad-1", order.id, action="accept"), "accepted")
    applied(api.command("squad-1", order.id, action="start"), "in_progress")
    for officers in (OFFICERS[:1], [OFFICERS[0], OFFICERS[0]], []):
        body = refused(
            api.command(
                "squad-1", order.id, action="feedback", officer_ids=officers, disposition="case_filed"
            ),
            422,
            "too_few_officers",
        )
        assert body["order"]["status"] == "in_progress"
    applied(
        api.command("squad-1", order.id, action="feedback", officer_ids=OFFICERS, disposition="case_filed"),
        "feedback_submitted",
    )


def test_a_resent_command_id_gets_the_same_answer_and_has_no_second_effect(api: ApiWorld) -> None:
    order = api.claim("squad-1", SignalKind.vehicle_alarm)
    accept, refused_start = new_id(), new_id()
    first = api.command("squad-1", order.id, command_id=accept, action="accept")
    applied(first, "accepted")
    first_refusal = api.command("squad-1", order.id, command_id=refused_start, action="accept")
    refused(first_refusal, 409, "invalid_state")  # already accepted
    rows, on_topic = api.snapshot(), sent(api)

    for _ in range(2):
        again = api.command("squad-1", order.id, command_id=accept, action="accept")
        assert (again.status_code, again.json()) == (200, first.json())
        again = api.command("squad-1", order.id, command_id=refused_start, action="accept")
        assert (again.status_code, again.json()) == (409, first_refusal.json())

    assert api.snapshot() == rows, "a re-sent command_id changed the database"
    assert sent(api) == on_topic, "a command already decided is not published again"
    by_command = [e["detail"].get("command_id") for e in api.events(order.id)]
    assert (by_command.count(accept), by_command.count(refused_start)) == (1, 1)


def test_the_acting_unit_comes_from_the_token_never_from_the_body(api: ApiWorld) -> None:
    order = api.claim("squad-1", SignalKind.vehicle_alarm)
    rows, on_topic = api.snapshot(), sent(api)
    for actor in ({"unit": COMMAND_CENTER, "officer_ids": OFFICERS}, {"unit": "squad-1"}, "squad-1"):
        response = api.command("squad-1", order.id, action="accept", actor=actor)
        assert response.status_code == 422, response.text
        [error] = response.json()["detail"]
        assert (error["type"], error["loc"]) == ("extra_forbidden", ["body", "actor"])
    assert (api.snapshot(), sent(api)) == (rows, on_topic), "a rejected body changed something"

    # A squad acts as itself, so a command-center action is refused by the state machine.
    refused(api.command("squad-1", order.id, action="reassign", to_unit="squad-2"), 403, "forbidden")
    applied(api.command("squad-1", order.id, action="accept"), "accepted")
    due = datetime.fromisoformat(
        api.client.get(f"/orders/{order.id}", headers=api.headers("squad-1")).json()["order"]["due_at"]
    )
    extended = api.command(
        "command_center",
        order.id,
        action="extend",
        new_due_at=(due + timedelta(days=1)).isoformat(),
        note="需调取监控",
    )
    applied(extended, "accepted")
    actors = [(e["type"], e["actor"]) for e in api.events(order.id)[2:]]
    assert actors == [("command_rejected", "squad-1"), ("accepted", "squad-1"), ("extended", COMMAND_CENTER)]


def test_a_complaint_is_closed_only_after_enough_callback_attempts(api: ApiWorld) -> None:
    order = api.claim("squad-1", SignalKind.complaint)
    work_to_feedback(api, "squad-1", order.id)
    now = datetime.now(UTC).isoformat()

    def close(attempts: int) -> httpx.Response:
        callback = {"result": "unreachable", "at": now, "attempts": attempts}
        return api.command("squad-1", order.id, action="close", officer_ids=OFFICERS, callback=callback)

    refused(close(1), 422, "callback_incomplete")
    refused(api.command("squad-1", order.id, action="close", officer_ids=OFFICERS), 422, "missing_field")
    applied(close(3), "closed")


@pytest.mark.postgres
def test_on_postgresql_an_incomplete_callback_is_422_too(
    kafka_broker: KafkaCluster, postgres_url: str
) -> None:
    with api_world(kafka_broker.bootstrap, postgres_url, "callback-on-postgres") as world:
        order = world.claim("squad-1", SignalKind.complaint)
        work_to_feedback(world, "squad-1", order.id)
        callback = {"result": "unreachable", "at": datetime.now(UTC).isoformat(), "attempts": 1}
        response = world.command("squad-1", order.id, action="close", officer_ids=OFFICERS, callback=callback)
        handler_errors = [f"{type(e).__name__}: {str(e)[:200]}" for e in world.consumer.errors]
        assert response.status_code == 422, f"{response.text}; the command handler raised {handler_errors}"
        assert response.json()["outcome"] == "callback_incomplete"


# --- the broker out of reach ------------------------------------------------------------------


def test_a_command_while_the_broker_is_unreachable_is_503_and_recorded_nowhere(flaky_api: FlakyApi) -> None:
    world = flaky_api.world
    order = world.claim("squad-1", SignalKind.vehicle_alarm)
    applied(world.command("squad-1", order.id, action="accept"), "accepted")  # the publisher is connected
    rows = world.snapshot()

    flaky_api.network.cut()
    command_id = new_id()
    started = time.monotonic()
    response = world.command("squad-1", order.id, command_id=command_id, action="start")
    assert time.monotonic() - started < 1 + 3, "the publisher's timeout is 1 s"
    assert response.status_code == 503, response.text
    assert "未作任何记录" in response.json()["detail"]
    assert world.repository.command_outcome(command_id) is None
    assert world.snapshot() == rows
    never_sent = world.client.get(f"/commands/{command_id}", headers=world.headers("squad-1"))
    assert (never_sent.status_code, never_sent.json()["outcome"]) == (404, "unknown_command")


def test_a_command_answered_503_is_not_applied_when_the_broker_comes_back(flaky_api: FlakyApi) -> None:
    world = flaky_api.world
    order, sentinel_order = world.claim("squad-1"), world.claim("squad-1")
    applied(world.command("squad-1", order.id, action="accept"), "accepted")

    flaky_api.network.cut()
    given_up = new_id()
    response = world.command("squad-1", order.id, command_id=given_up, action="start")
    assert response.status_code == 503, response.text
    flaky_api.network.restore()

    # One partition: once a later command is decided, everything produced before it was too.
    sentinel = new_id()
    deadline = time.monotonic() + 20
    while (
        answer := world.command("squad-1", sentinel_order.id, command_id=sentinel, action="accept")
    ).status_code == 503:
        assert time.monotonic() < deadline, "the publisher did not reconnect"
    applied(answer, "accepted")
    assert world.repository.command_outcome(given_up) is None, "the command answered 503 was applied"
    current = world.repository.get(order.id)
    assert current is not None and current.status.value == "accepted"


#: The API with a publisher on a closed port, in a child process the test can kill: a
#: request stuck in kafka-python's bootstrap keeps a non-daemon thread that would hold up
#: the test session's exit. Prints "ready", then the answer as JSON.
CLOSED_PORT_CLIENT = """
import json, sys, time
from fastapi.testclient import TestClient
from workorder_pipeline.api.app import create_app
from workorder_pipeline.api.auth import Role, TokenEntry, Tokens, hash_token
from workorder_pipeline.streams.kafka.producers import KafkaCommandPublisher
from workorder_pipeline.storage.database import create_engine
from workorder_pipeline.services.sender_keys import new_signing_key
from workorder_pipeline.storage.api_store import ApiStore

url, bootstrap, topic, token, order_id, command_id, timeout_s = sys.argv[1:]
entry = {"name": "squad-1", "role": Role.unit, "unit": "squad-1", "sha256": hash_token(token)}
tokens = Tokens([TokenEntry(**entry, expires_at="2100-01-01T00:00:00Z")])
publisher = KafkaCommandPublisher(bootstrap, topic, new_signing_key("api"), timeout_s=float(timeout_s))
app = create_app(ApiStore(create_engine(url)), tokens, publisher, wait_s=5)
client = TestClient(app)
print("ready", flush=True)
started = time.monotonic()
response = client.post(
    f"/orders/{order_id}/commands",
    json={"command_id": command_id, "action": "accept"},
    headers={"Authorization": f"Bearer {token}"},
)
answer = {"status": response.status_code, "body": response.json(), "elapsed_s": time.monotonic() - started}
print(json.dumps(answer), flush=True)
"""


def test_a_publisher_on_a_closed_port_answers_503_within_its_timeout(api: ApiWorld) -> None:
    order, command_id, timeout_s = api.claim("squad-1"), new_id(), 1.0
    rows = api.snapshot()
    closed = f"{HOST}:{free_port()}"
    arguments = [
        api.database_url,
        closed,
        api.topic,
        api.tokens["squad-1"],
        order.id,
        command_id,
        str(timeout_s),
    ]
    child = subprocess.Popen(
        [sys.executable, "-c", CLOSED_PORT_CLIENT, *arguments],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert child.stdout is not None
    stdout = child.stdout

    def read() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        assert lines.get(timeout=30).strip() == "ready"
        try:
            answer = json.loads(lines.get(timeout=timeout_s + 4))
        except queue.Empty:
            raise AssertionError(
                f"no answer {timeout_s + 4:g} s after the request (timeout_s={timeout_s:g})"
            ) from None
    finally:
        child.kill()
        child.wait()
    assert answer["status"] == 503, answer
    assert api.repository.command_outcome(command_id) is None
    assert api.snapshot() == rows


def test_a_command_sent_and_not_decided_yet_is_pending_and_one_never_sent_is_unknown(
    flaky_api: FlakyApi,
) -> None:
    world = flaky_api.world
    order = world.claim("squad-1", SignalKind.vehicle_alarm)
    world.consumer.stop()  # the worker is away: nothing gets decided
    command_id = new_id()
    sent = world.command("squad-1", order.id, command_id=command_id, action="accept")
    assert (sent.status_code, sent.json()["outcome"]) == (202, "pending"), sent.text
    assert sent.headers["Location"] == f"/commands/{command_id}"

    pending = world.client.get(f"/commands/{command_id}", headers=world.headers("squad-1"))
    assert (pending.status_code, pending.json()["outcome"]) == (202, "pending")
    other_unit = world.client.get(f"/commands/{command_id}", headers=world.headers("squad-2"))
    assert (other_unit.status_code, other_unit.json()["outcome"]) == (404, "unknown_command")  # no oracle
    for never_sent in (new_id(), "x" * 5000, "ＷＯ-全角"):
        unknown = world.client.get(f"/commands/{never_sent}", headers=world.headers("command_center"))
        assert (unknown.status_code, unknown.json()["outcome"]) == (404, "unknown_command"), never_sent
