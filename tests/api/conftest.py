"""The HTTP API on real parts: a migrated database, the bundled samples through Intake,
bearer tokens, and a KafkaCommandPublisher on the session's broker.

Commands are decided without the faust worker: a small kafka-python consumer, in a
background thread, reads the module's commands topic and feeds each batch to
``CommandHandler.handle`` (the worker's own handler). Every command the API sends really
goes through the broker; nothing is mocked.
"""

from __future__ import annotations

import contextlib
import functools
import re
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from kafka import KafkaConsumer, TopicPartition
from sqlalchemy.engine import Engine

from workorder_pipeline.api.app import create_app
from workorder_pipeline.api.auth import Role, TokenEntry, Tokens, hash_token, new_token
from workorder_pipeline.api.console.session import ConsoleParts
from workorder_pipeline.api.guard import AuthFailures
from workorder_pipeline.config.settings import Topics
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.schemas.figures import ScoreWeights
from workorder_pipeline.schemas.senders import SenderKeys
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import WorkOrder, WorkOrderStatus
from workorder_pipeline.services.commands import CommandHandler, CommandResult
from workorder_pipeline.services.intake import InboundMessage, Intake
from workorder_pipeline.services.policy_files import load_policy, load_reference
from workorder_pipeline.services.report_archive import MonthlyReports
from workorder_pipeline.services.sender_keys import new_signing_key
from workorder_pipeline.storage.api_store import ApiStore
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.figures_read import FigureFacts
from workorder_pipeline.storage.report_store import ReportStore
from workorder_pipeline.storage.repository import WorkOrderRepository
from workorder_pipeline.streams.kafka.admin import ensure_topics
from workorder_pipeline.streams.kafka.producers import KafkaCommandPublisher
from workorder_pipeline.wo.embedded_broker import HOST, EmbeddedBroker, free_port
from workorder_pipeline.wo.kafka_cluster import KafkaCluster

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Tokens of the tests' worlds do not expire while they run.
FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)
SAMPLES = REPO_ROOT / "samples"
POLICY = load_policy(REPO_ROOT / "policy")
REFERENCE = load_reference(REPO_ROOT / "policy")
UNIT_IDS = frozenset(POLICY.units.ids())
#: The API signs with this key; the tests' handler trusts it (and nothing else).
API_KEY = new_signing_key("api-tests")
SENDERS = SenderKeys().with_key(API_KEY.public("api (tests)", ("*",)))
TOPICS = Topics()
SAMPLE_TOPICS = {
    "vehicle-alarms.jsonl": TOPICS.vehicle_alarms,
    "suspects.jsonl": TOPICS.suspects,
    "checkin-failures.jsonl": TOPICS.checkin_failures,
    "complaints.jsonl": TOPICS.complaints,
}
#: How long the API waits for a command's verdict before answering 202.
WAIT_S = 5.0
PARTITIONS = 3
OFFICERS = ["JS0682-0117", "JS0682-0342"]

Row = dict[str, Any]


def sample_messages() -> list[InboundMessage]:
    """Every line of the valid sample files, as the inbound topics would deliver them."""
    messages: list[InboundMessage] = []
    for file, topic in SAMPLE_TOPICS.items():
        for line in (SAMPLES / file).read_bytes().splitlines():
            if line.strip():
                offset = len(messages)
                messages.append(InboundMessage(topic, 0, offset, None, line, 1_795_000_000_000 + offset))
    return messages


class CommandConsumer:
    """The worker's command path without faust: consume the commands topic, call the handler."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, handler: CommandHandler) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._partitions = partitions
        self._handler = handler
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"commands:{topic}", daemon=True)
        self.results: list[CommandResult] = []
        self.errors: list[BaseException] = []

    def start(self, timeout_s: float = 15) -> None:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError(f"the command consumer on {self._topic} did not start: {self.errors!r}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=self._bootstrap,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=50,  # Tansu answers a fetch at its max wait, not when data arrives
                request_timeout_ms=5000,
                reconnect_backoff_max_ms=200,  # back soon after a network cut (flaky_api)
            )
        except BaseException as exc:
            self.errors.append(exc)
            raise
        try:
            partitions = [TopicPartition(self._topic, p) for p in range(self._partitions)]
            consumer.assign(partitions)
            consumer.seek_to_beginning(*partitions)
            self._ready.set()
            while not self._stop.is_set():
                for records in consumer.poll(timeout_ms=100).values():
                    messages = [
                        InboundMessage(
                            r.topic, r.partition, r.offset, r.key, r.value, r.timestamp, tuple(r.headers)
                        )
                        for r in records
                    ]
                    try:
                        self.results.append(self._handler.handle(messages, datetime.now(UTC)))
                    except Exception as exc:  # the worker would retry; the test sees it in .errors
                        self.errors.append(exc)
        except BaseException as exc:
            self.errors.append(exc)
            raise
        finally:
            consumer.close()


@dataclass
class ApiWorld:
    """One database with the samples' orders, one commands topic, one app."""

    engine: Engine
    repository: WorkOrderRepository
    app: FastAPI
    client: TestClient
    bootstrap: str
    topic: str
    tokens: dict[str, str]
    token_store: Tokens
    partitions: int
    consumer: CommandConsumer
    publisher: KafkaCommandPublisher
    database_url: str
    _claimed: set[str] = field(default_factory=set)

    def headers(self, who: str) -> dict[str, str]:
        """Authorization header of ``squad-1``, ``squad-2``, ``command_center`` or ``supervisor``."""
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def orders(self) -> list[WorkOrder]:
        return self.repository.list_orders(now=datetime.now(UTC), limit=500)

    def claim(self, unit: str, kind: SignalKind | None = None, overdue: bool = False) -> WorkOrder:
        """A dispatched order of ``unit`` no other test of the module has claimed (``overdue``:
        one already past its deadline)."""
        now = datetime.now(UTC)
        for order in sorted(self.orders(), key=lambda o: o.id):
            if (
                order.unit == unit
                and (kind is None or order.kind is kind)
                and (not overdue or order.due_at < now)
                and order.status is WorkOrderStatus.dispatched
                and order.id not in self._claimed
            ):
                self._claimed.add(order.id)
                return order
        raise LookupError(f"no unclaimed dispatched {kind or 'order'} of {unit} left in the samples")

    def snapshot(self) -> dict[str, list[Row]]:
        """Every row of the tables commands write to."""
        with self.engine.connect() as conn:
            return {
                table: [
                    dict(r) for r in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY {key}")).mappings()
                ]
                for table, key in (
                    ("work_order", "id"),
                    ("work_order_event", "id"),
                    ("processed_command", "command_id"),
                )
            }

    def events(self, order_id: str) -> list[Row]:
        return self.repository.history(order_id)

    def topic_end_offsets(self) -> dict[int, int]:
        """How many messages each partition of the commands topic holds."""
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, request_timeout_ms=5000)
        try:
            partitions = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            ends: dict[Any, int] = consumer.end_offsets(partitions)
            return {tp.partition: offset for tp, offset in ends.items()}
        finally:
            consumer.close()

    def command(self, who: str, order_id: str, **body: Any) -> httpx.Response:
        """POST /orders/{order_id}/commands as ``who``."""
        response: httpx.Response = self.client.post(
            f"/orders/{order_id}/commands", json=body, headers=self.headers(who)
        )
        return response


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The app's OpenAPI document, at collection time (``parametrize`` needs it before any
    fixture runs). Building the document touches neither the database nor the broker."""
    unused = KafkaCommandPublisher("127.0.0.1:9", "unused", API_KEY)
    document: dict[str, Any] = create_app(ApiStore(create_engine("sqlite://")), Tokens([]), unused).openapi()
    return document


def documented_operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(METHOD, path template) of every operation of the document."""
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in methods
    ]


def topic_name(owner: str) -> str:
    """A topic of its own for ``owner`` (a module's name), valid for Kafka."""
    return f"api.{re.sub(r'[^a-zA-Z0-9._-]', '-', owner)}.{uuid.uuid4().hex[:8]}.commands"


@contextlib.contextmanager
def api_world(
    bootstrap: str,
    database_url: str,
    owner: str,
    *,
    partitions: int = PARTITIONS,
    publish_timeout_s: float = 5,
    console: Callable[[Engine], ConsoleParts] | None = None,
) -> Iterator[ApiWorld]:
    """Build the world (see the module docstring); tear it down in reverse order. ``console``:
    the web console's parts on the world's database (tests/console)."""
    migrate(database_url)
    engine = create_engine(database_url)
    repository = WorkOrderRepository(engine)
    now = datetime.now(UTC).replace(microsecond=0)
    intake = Intake(compile_policy(POLICY), repository, TOPICS.inbound(), reference=lambda: REFERENCE)
    result = intake.handle(sample_messages(), now)
    assert result.created and not result.dead_letters, result.dead_letters
    intake.dispatched(result.to_dispatch, now)

    tokens = {name: new_token() for name in ("squad-1", "squad-2", "command_center", "supervisor")}
    token_store = Tokens(
        [
            TokenEntry(
                name="squad-1",
                role=Role.unit,
                unit="squad-1",
                sha256=hash_token(tokens["squad-1"]),
                expires_at=FAR_FUTURE,
            ),
            TokenEntry(
                name="squad-2",
                role=Role.unit,
                unit="squad-2",
                sha256=hash_token(tokens["squad-2"]),
                expires_at=FAR_FUTURE,
            ),
            TokenEntry(
                name="duty officer",
                role=Role.command_center,
                sha256=hash_token(tokens["command_center"]),
                expires_at=FAR_FUTURE,
            ),
            TokenEntry(
                name="inspector",
                role=Role.supervisor,
                sha256=hash_token(tokens["supervisor"]),
                expires_at=FAR_FUTURE,
            ),
        ]
    )

    topic = topic_name(owner)
    ensure_topics(bootstrap, [topic], partitions=partitions, replication_factor=1)
    handler = CommandHandler(repository, UNIT_IDS, POLICY.lifecycle, SENDERS)
    consumer = CommandConsumer(bootstrap, topic, partitions, handler)
    publisher = KafkaCommandPublisher(bootstrap, topic, API_KEY, timeout_s=publish_timeout_s)
    parts = console(engine) if console is not None else None
    reports = MonthlyReports(
        ReportStore(engine),
        FigureFacts(engine),
        ScoreWeights(),
        Path(tempfile.mkdtemp(prefix="wo-reports-")),
        POLICY.units.names(),
    )
    app = create_app(ApiStore(engine), token_store, publisher, wait_s=WAIT_S, console=parts, reports=reports)
    try:
        consumer.start()
        with TestClient(app) as client:
            yield ApiWorld(
                engine,
                repository,
                app,
                client,
                bootstrap,
                topic,
                tokens,
                token_store,
                partitions,
                consumer,
                publisher,
                database_url,
            )
    finally:
        consumer.stop()
        with contextlib.suppress(Exception):  # it flushes: may time out when the broker is cut off
            publisher.close()
        engine.dispose()


@pytest.fixture(scope="module")
def api(
    kafka_broker: KafkaCluster, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[ApiWorld]:
    """The module's world on SQLite. Tests claim the orders they change (``api.claim``)."""
    directory = tmp_path_factory.mktemp("api")
    with api_world(kafka_broker.bootstrap, f"sqlite:///{directory}/wo.db", request.module.__name__) as world:
        yield world
        assert not world.consumer.errors, f"the command handler failed: {world.consumer.errors!r}"


# --- a broker the network can be cut from ---------------------------------------------------


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 in front of a broker: ``cut()`` drops every connection and
    refuses new ones (a network partition), ``restore()`` listens again on the same port."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target_port = target_port
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._acceptor: threading.Thread | None = None
        self.is_cut = True

    def restore(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, self.port))
        listener.listen()
        listener.settimeout(0.05)
        self._stop = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, args=(listener, self._stop), daemon=True)
        self._acceptor.start()
        self.is_cut = False

    def cut(self) -> None:
        self.is_cut = True
        self._stop.set()
        if self._acceptor is not None:
            self._acceptor.join()  # the listener is closed: new connections are refused from here
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket, stop: threading.Event) -> None:
        with listener:
            while not stop.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                try:
                    upstream = socket.create_connection((HOST, self._target_port), timeout=5)
                except OSError:
                    client.close()
                    continue
                client.settimeout(None)
                upstream.settimeout(None)
                with self._lock:
                    if stop.is_set():  # accepted while being cut
                        client.close()
                        upstream.close()
                        return
                    self._sockets += [client, upstream]
                for source, sink in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class ProxiedBroker(EmbeddedBroker):
    """A Tansu broker that tells clients to reach it through ``advertised_port`` (the proxy)."""

    def __init__(self, advertised_port: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.advertised_port = advertised_port

    def command(self) -> list[str]:
        command = super().command()
        command[command.index("--advertised-listener-url") + 1] = f"tcp://{HOST}:{self.advertised_port}"
        return command


@dataclass
class FlakyApi:
    world: ApiWorld
    network: CuttableProxy


@pytest.fixture
def flaky_api(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[FlakyApi]:
    """A world on a broker of its own, reached through a proxy the test can cut; one partition,
    so commands are consumed in the order they were produced; 1 s publish timeout."""
    broker_port = free_port()
    network = CuttableProxy(broker_port)
    network.restore()
    with ProxiedBroker(network.port, port=broker_port, log_path=tmp_path / "broker.log"):
        bootstrap = f"{HOST}:{network.port}"
        url = f"sqlite:///{tmp_path}/wo.db"
        try:
            with api_world(bootstrap, url, request.node.name, partitions=1, publish_timeout_s=1) as world:
                try:
                    yield FlakyApi(world, network)
                finally:
                    if network.is_cut:
                        network.restore()  # so the publisher's close() can flush
                assert not world.consumer.errors, f"the command handler failed: {world.consumer.errors!r}"
        finally:
            network.cut()


@pytest.fixture(autouse=True)
def _no_bad_token_history(request: pytest.FixtureRequest) -> None:
    """Every test starts with a clean bad-token count: all test clients are one address."""
    if "api" in request.fixturenames:
        world: ApiWorld = request.getfixturevalue("api")
        world.app.state.auth_failures = AuthFailures()
