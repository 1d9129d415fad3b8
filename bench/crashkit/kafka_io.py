"""The crash test's Kafka side: offsets, reading a topic whole, the publisher thread; and
counting dispatched orders in the database."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import sqlalchemy as sa
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaTimeoutError

from crashkit.config import CrashTestError
from crashkit.workload import Chunk, Message
from workorder_pipeline.services.sender_keys import SigningKey, signed_headers
from workorder_pipeline.storage.database import create_engine
from workorder_pipeline.storage.tables import work_order


def _partitions(consumer: Any, topics: list[str]) -> list[Any]:
    found = []
    for topic in topics:
        deadline = time.monotonic() + 20
        while not (partitions := consumer.partitions_for_topic(topic)):
            if time.monotonic() > deadline:
                raise CrashTestError(f"no partitions for topic {topic}")
            time.sleep(0.1)
        found += [TopicPartition(topic, p) for p in sorted(partitions)]
    return found


def end_offsets(bootstrap: str, topics: list[str]) -> dict[Any, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, request_timeout_ms=10_000)
    try:
        result: dict[Any, int] = consumer.end_offsets(_partitions(consumer, topics))
        return result
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str, partitions: list[Any]) -> dict[Any, int]:
    """The group's committed offsets, read without joining it (0 where none)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, request_timeout_ms=10_000
    )
    try:
        return {tp: consumer.committed(tp, timeout_ms=10_000) or 0 for tp in partitions}
    finally:
        consumer.close()


def read_topic(bootstrap: str, topic: str, timeout_s: float = 120) -> list[Any]:
    """Every record now in ``topic``, as a read_committed consumer sees it (no aborted ones)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
        request_timeout_ms=10_000,
    )
    try:
        partitions = _partitions(consumer, [topic])
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout_s
        end = _stable_end(bootstrap, consumer, partitions, deadline, topic)
        records: list[Any] = []
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise CrashTestError(f"could not read {topic} to its end within {timeout_s:g} s")
            for batch in consumer.poll(timeout_ms=500, max_records=5000).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def _stable_end(
    bootstrap: str, consumer: KafkaConsumer, partitions: list[Any], deadline: float, topic: str
) -> dict[Any, int]:
    """The read_committed end of each partition once no transaction is open in it. A worker
    SIGKILLed inside a transaction leaves it open until the partition's next owner fences it
    or the broker aborts it after the transaction timeout: until then a read_committed
    consumer's end stops before it, and everything committed after it is not readable yet.
    Reading to that end would report those messages missing. Right after a drill restarted
    every broker, asking for the ends can time out while leaders move: asked again, within
    the read's deadline."""
    everything = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_uncommitted")
    try:
        while True:
            try:
                stable, high = consumer.end_offsets(partitions), everything.end_offsets(partitions)
            except KafkaTimeoutError:
                if time.monotonic() > deadline:
                    raise
                continue
            if stable == high:
                return dict(stable)
            if time.monotonic() > deadline:
                raise CrashTestError(f"a transaction in {topic} stayed open past the read's deadline")
            time.sleep(0.5)
    finally:
        everything.close()


class Publisher(threading.Thread):
    """Publishes the chunks' signals spread evenly over ``duration_s``; a chunk's commands
    follow once their orders are dispatched (``dispatched`` counts them), or after
    ``command_wait_s``: commands for orders not made yet are refused, which is fine too."""

    #: The producer's settings; a failure drill lets writes wait longer for the brokers.
    producer_options: ClassVar[Mapping[str, Any]] = {
        "acks": "all",
        "linger_ms": 5,
        "retries": 10,
        "request_timeout_ms": 30_000,
        "max_in_flight_requests_per_connection": 1,  # retries keep each partition's order
    }
    #: How long one chunk's sends may take to be acknowledged.
    send_timeout_s: ClassVar[float] = 60.0

    def __init__(
        self,
        bootstrap: str,
        chunks: list[Chunk],
        duration_s: float,
        dispatched: Callable[[list[str]], int],
        signing_key: SigningKey,
        command_wait_s: float = 10.0,
    ) -> None:
        super().__init__(name="crash-publisher", daemon=True)
        self.bootstrap = bootstrap
        #: Commands are signed with it (a key the workers trust: ``signed_policy``).
        self.signing_key = signing_key
        self.chunks = chunks
        self.duration_s = duration_s
        self.dispatched = dispatched
        self.command_wait_s = command_wait_s
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.sent = 0

    def run(self) -> None:
        try:
            producer = KafkaProducer(bootstrap_servers=self.bootstrap, **self.producer_options)
        except BaseException as exc:
            self.error = exc
            return
        try:
            start = time.monotonic()
            for n, chunk in enumerate(self.chunks):
                at = start + self.duration_s * n / len(self.chunks)
                if self.stop.wait(max(0.0, at - time.monotonic())):
                    return
                self._send(producer, chunk.signals)
                if chunk.targets:
                    give_up = time.monotonic() + self.command_wait_s
                    while time.monotonic() < give_up and not self.stop.is_set():
                        with contextlib.suppress(Exception):  # the database may be busy: ask again
                            if self.dispatched(chunk.targets) >= len(chunk.targets):
                                break
                        self.stop.wait(0.5)
                self._send(producer, chunk.commands, signed=True)
        except BaseException as exc:
            self.error = exc
        finally:
            producer.close(timeout=10)

    def _send(self, producer: Any, messages: list[Message], signed: bool = False) -> None:
        futures = [
            producer.send(
                m.topic,
                key=m.key,
                value=m.value,
                headers=signed_headers(self.signing_key, m.value) if signed else None,
            )
            for m in messages
        ]
        producer.flush(timeout=self.send_timeout_s)
        for future in futures:
            future.get(timeout=self.send_timeout_s)
        self.sent += len(messages)


def dispatched_counter(url: str) -> tuple[Callable[[list[str]], int], Callable[[], None]]:
    """How many of some orders are dispatched; and how to release its connections."""
    engine = create_engine(url)

    def count(ids: list[str]) -> int:
        query = sa.select(sa.func.count()).where(
            work_order.c.id.in_(ids), work_order.c.dispatched_at.is_not(None)
        )
        with engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    return count, engine.dispose
