"""Notifications under the outages the other drills leave out: a receiver that accepts the
connection and never answers, trickles its answer, claims (or sends) a gigabyte, answers
bytes that are not HTTP or JSON nested past the parser; and the database gone while a
message is in flight; an SMTP server trickling its greeting a byte a second. Nothing is
lost, nothing is sent twice beyond the at-least-once window (the receiver had it and its
answer never came), and the worker goes on."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, timedelta

import psycopg
import pytest
from sqlalchemy.exc import DBAPIError

from tests.conftest import POSTGRES_ADMIN_DSN
from tests.integration.notify_support import HOST, free_port
from tests.integration.notify_world import LATER, World, attempt_log, escalate
from tests.integration.notify_world import world as world  # the fixture
from workorder_pipeline.schemas.notifications import AttemptOutcome, NotificationPolicy
from workorder_pipeline.services.notifications import LEASE, Notifier, Sent
from workorder_pipeline.storage.api_store import ApiStore
from workorder_pipeline.streams.channels import TIMEOUT_S
from workorder_pipeline.streams.channels.deadline import TOO_SLOW, deadline_for, send_deadline

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


class TricklingSmtp:
    """An SMTP server on 127.0.0.1 whose greeting never ends: a 220 continuation line sent
    one byte a second (each read well within smtplib's timeout, the conversation never
    done). Counts the connections and those the client closed."""

    def __init__(self) -> None:
        self.port = free_port()
        self.connections = 0
        self.closed_by_client = 0
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        threading.Thread(target=self._run, args=(ready,), daemon=True).start()
        assert ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._greet, HOST, self.port))
        ready.set()
        with contextlib.suppress(RuntimeError):  # stopped
            self._loop.run_until_complete(server.serve_forever())

    async def _greet(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        hung_up = asyncio.ensure_future(reader.read(1))  # b"": the client shut its side
        line = b"220-mail.example.invalid is thinking\r\n"
        with contextlib.suppress(OSError):
            for index in range(10**6):
                writer.write(line[index % len(line) : index % len(line) + 1])
                await writer.drain()
                done, _ = await asyncio.wait({hung_up}, timeout=1.0)
                if done:
                    self.closed_by_client += 1
                    break
        writer.close()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)


@pytest.fixture
def trickling_smtp() -> Iterator[TricklingSmtp]:
    found = TricklingSmtp()
    yield found
    found.close()


def test_an_smtp_server_trickling_its_greeting_fails_the_attempt_by_the_deadline_and_it_is_retried(
    world: World, trickling_smtp: TricklingSmtp
) -> None:
    """smtplib's timeout is per read: without the send's own deadline this run never ends."""
    policy = world.policy(route={"routes": [{"match": {"level": ["leadership"]}, "receivers": ["mail"]}]})
    document = policy.model_dump(mode="json", by_alias=True)
    good_port = world.mailbox_port
    slow = next(r for r in document["receivers"] if r["id"] == "mail")
    slow["via"]["port"] = trickling_smtp.port
    order_id = escalate(world)
    world.clock.now = LATER.astimezone(UTC)
    notifier = world.notifier(NotificationPolicy.model_validate(document))  # timeout 5 s
    deadline_s = deadline_for(5)
    started = time.monotonic()
    sent = run_bounded(world, notifier)
    took = time.monotonic() - started
    assert [s.outcome for s in sent] == [AttemptOutcome.unreachable]
    assert deadline_s <= took < deadline_s + 5, f"the send ended after {took:.1f} s"
    [shown] = ApiStore(world.engine).notifications(order_id)
    assert [(a["outcome"], a["detail"]) for a in shown["attempt_log"]] == [("unreachable", TOO_SLOW)]
    assert shown["status"] == "pending" and shown["lease_until"] is None  # released, not held
    assert shown["send_after"] == world.clock.now + timedelta(seconds=30)  # the policy's backoff
    assert trickling_smtp.connections == 1
    assert _eventually(lambda: trickling_smtp.closed_by_client == 1), "the connection was left open"

    # The server mends (the good one on the same address): the retry delivers, once.
    slow["via"]["port"] = good_port
    mended = world.notifier(NotificationPolicy.model_validate(document))
    world.clock.now += timedelta(seconds=30)
    assert [s.outcome for s in run_bounded(world, mended)] == [AttemptOutcome.delivered]
    world.clock.now += timedelta(minutes=10)
    assert run_bounded(world, mended) == []
    outcomes = [a["outcome"] for a in ApiStore(world.engine).notifications(order_id)[0]["attempt_log"]]
    assert outcomes == ["unreachable", "delivered"] and len(world.mailbox.messages) == 1


def _eventually(check: Callable[[], bool], limit_s: float = 10) -> bool:
    """``check`` within ``limit_s`` (a hang detector for the server's own view)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_an_exchange_begun_at_the_claim_ends_by_the_sends_deadline_before_the_lease() -> None:
    """A send still running when its lease ends could be claimed and sent by another worker;
    a send whose first exchange could not end by its deadline would never send at all."""
    exchange_s = deadline_for(TIMEOUT_S)
    ends = send_deadline(LEASE.total_seconds(), exchange_s)  # from the claim
    assert exchange_s <= ends < LEASE.total_seconds()
