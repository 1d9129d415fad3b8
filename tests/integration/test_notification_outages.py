"""Notifications under the outages the other drills leave out: a receiver that accepts the
connection and never answers, trickles its answer, claims (or sends) a gigabyte, answers
bytes that are not HTTP or JSON nested past the parser; and the database gone while a
message is in flight. Nothing is lost, nothing is sent twice beyond the at-least-once
window (the receiver had it and its answer never came), and the worker goes on."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, timedelta

import psycopg
import pytest
from sqlalchemy.exc import DBAPIError

from tests.conftest import POSTGRES_ADMIN_DSN
from tests.integration.notify_support import free_port
from tests.integration.notify_world import LATER, World, attempt_log, escalate
from tests.integration.notify_world import world as world  # the fixture
from workorder_pipeline.schemas.notifications import NotificationPolicy
from workorder_pipeline.services.notifications import Notifier, Sent
from workorder_pipeline.storage.api_store import ApiStore

pytestmark = pytest.mark.integration

GIGABYTE = 1 << 30
#: The flood stops here whatever the client does (the test's own bound).
FLOOD_BYTES = 32 << 20


class HostileReceiver:
    """A receiver on 127.0.0.1 answering each request as ``mode`` says; ``ok`` answers as a
    webhook's receiver should (202)."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests = 0
        self.flooded = 0
        self.port = free_port()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def close(self) -> None:
        self._stop.set()
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            _read_request(conn)
            self.requests += 1
            mode = self.mode
            if mode == "ok":
                conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            elif mode == "hang":
                self._stop.wait(120)
            elif mode == "trickle":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % GIGABYTE)
                while not self._stop.wait(0.5):
                    conn.sendall(b" ")
            elif mode == "flood":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % GIGABYTE)
                chunk = b"0" * 65536
                while self.flooded < FLOOD_BYTES and not self._stop.is_set():
                    conn.sendall(chunk)
                    self.flooded += len(chunk)
            elif mode == "garbage":
                conn.sendall(b"\x00\xff\xfeNOT HTTP AT ALL\r\n\r\n\x89PNG")
            elif mode == "nested":
                body = b"[" * 50_000  # under the size limit, past the JSON parser's depth
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def _read_request(conn: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536) or b"\r\n\r\n"
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    while len(body) < length:
        body += conn.recv(65536) or b" " * length


@pytest.fixture
def receiver() -> Iterator[HostileReceiver]:
    found = HostileReceiver()
    yield found
    found.close()


def run_bounded(world: World, notifier: Notifier, limit_s: float = 90) -> list[Sent]:
    """One run of the leader's job; a run that never ends fails the test (not a timing
    assertion: a hang detector far above the channel's own deadline)."""
    result: list[list[Sent]] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(notifier.run(world.clock)))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit_s)
    assert not thread.is_alive(), "the notifier's run never ended"
    if errors:
        raise errors[0]
    return result[0]


def _policy(world: World, url: str) -> NotificationPolicy:
    policy = world.policy(
        route={"routes": [{"match": {"level": ["leadership"]}, "receivers": ["bad", "wecom"]}]}
    )
    document = policy.model_dump(mode="json", by_alias=True)
    document["receivers"].append(
        {"id": "bad", "via": {"channel": "webhook", "url": url, "secret_env": "T_HOOK_SECRET"}}
    )
    return NotificationPolicy.model_validate(document)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("mode", ["hang", "trickle", "flood", "garbage", "nested"])
def test_a_receiver_that_hangs_or_answers_garbage_fails_the_attempt_and_the_others_go_out(
    world: World, receiver: HostileReceiver, mode: str
) -> None:
    policy = _policy(world, receiver.url)
    order_id = escalate(world)
    world.clock.now = LATER.astimezone(UTC)
    receiver.mode = mode
    run_bounded(world, world.notifier(policy))
    log = attempt_log(world, order_id)
    assert log["wecom"] == [("delivered", "0")]  # the other receiver is not held up
    (first,) = log["bad"]
    if mode == "nested":  # a 200 whose body is not read as JSON: the webhook only needs the status
        assert first == ("delivered", "200")
    else:
        assert first[0] == "unreachable", first
    if mode == "flood":
        assert receiver.flooded < FLOOD_BYTES // 2, "the answer was read far past its limit"
    # The receiver mends: what it did not take is sent again, once; what it took is not.
    receiver.mode = "ok"
    world.clock.now += timedelta(minutes=10)
    run_bounded(world, world.notifier(policy))
    world.clock.now += timedelta(minutes=10)
    assert run_bounded(world, world.notifier(policy)) == []
    outcomes = [o for o, _ in attempt_log(world, order_id)["bad"]]
    assert outcomes == (["delivered"] if mode == "nested" else ["unreachable", "delivered"])
    assert receiver.requests == len(outcomes)  # at most one repeat: the attempt whose answer never came
    assert {n["status"] for n in ApiStore(world.engine).notifications(order_id)} == {"sent"}


@contextlib.contextmanager
def database_gone(database_url: str) -> Iterator[None]:
    """This test's PostgreSQL database refuses connections and loses those it had (other
    databases on the server are left alone); back on leaving."""
    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    try:
        yield
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_database_gone_mid_send_loses_nothing_and_the_worker_goes_on(
    world: World, database_url: str
) -> None:
    policy = world.policy(
        route={"routes": [{"match": {"level": ["leadership"]}, "receivers": ["hook", "wecom"]}]}
    )
    order_id = escalate(world)
    now = LATER.astimezone(UTC)
    world.clock.now = now
    notifier = world.notifier(policy)
    world.robots.hold.set()  # the first message is in flight when the database goes
    errors: list[BaseException] = []

    def leader() -> None:
        try:
            asyncio.run(notifier.run(world.clock))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=leader, daemon=True)
    thread.start()
    assert world.robots.arrived.wait(60), "nothing was sent"
    with database_gone(database_url):
        world.robots.release.set()  # the platform took it; the worker cannot record that
        thread.join(90)
        assert not thread.is_alive(), "the run hung on the dead database"
        assert errors and isinstance(errors[0], DBAPIError), errors
        # The leader's job comes back while the database is still gone: it fails, it does not hang.
        world.clock.now = now + timedelta(seconds=30)
        with pytest.raises(DBAPIError):
            run_bounded(world, notifier)
    world.robots.hold.clear()
    (in_flight,) = world.robots.received

    # The database is back; the same notifier (its pool held dead connections) goes on.
    world.clock.now = now + timedelta(minutes=1)
    assert len(run_bounded(world, notifier)) == 1  # the other one; the first's lease still holds
    world.clock.now = now + timedelta(minutes=3)  # the lease expired: the first is sent again
    assert len(run_bounded(world, notifier)) == 1
    world.clock.now = now + timedelta(minutes=30)
    assert run_bounded(world, notifier) == []
    shown = ApiStore(world.engine).notifications(order_id)
    assert {n["status"] for n in shown} == {"sent"}
    paths = [r.path for r in world.robots.received]
    assert paths.count(in_flight.path) == 2 and len(paths) == 3  # the one in flight: twice, at most
    logs = sorted([a["outcome"] for a in n["attempt_log"]] for n in shown)
    assert logs == [["delivered"], ["interrupted", "delivered"]]
