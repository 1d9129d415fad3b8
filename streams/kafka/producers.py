"""Every producer the project makes, side by side: the worker's (aiokafka), the API's
command publisher and ``wo publish``'s (kafka-python). All wait for every in-sync
replica (``acks="all"``) and none creates a topic with the broker's defaults."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from kafka import KafkaProducer
from kafka.errors import KafkaError

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.schemas.commands import WorkOrderCommand
from workorder_pipeline.services.ports import CommandNotPublished
from workorder_pipeline.services.sender_keys import SigningKey, signed_headers
from workorder_pipeline.streams.kafka.security import aiokafka_options, kafka_python_options

#: Room for a dead letter: the original message, base64-encoded (4/3), plus the envelope.
_ENVELOPE_BYTES = 64 * 1024


def new_producer(settings: Settings, transactional_id: str | None = None) -> AIOKafkaProducer:
    """The worker's producer (streams/outputs.py), idempotent when transactional."""
    options: dict[str, Any] = {"linger_ms": 5}
    if transactional_id is not None:
        options = {
            "transactional_id": transactional_id,
            "transaction_timeout_ms": int(settings.kafka_transaction_timeout_s * 1000),
            # A transaction's messages are queued at once, as whole batches (Outputs.send_all),
            # and its commit waits for them: lingering would only delay every commit.
            "linger_ms": 0,
        }
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        max_request_size=settings.max_message_bytes * 4 // 3 + _ENVELOPE_BYTES,
        **options,
        **aiokafka_options(settings),
    )


def never_creating_topics(producer: KafkaProducer) -> KafkaProducer:
    """The producer, made unable to have the broker create a topic. kafka-python 3.0.12 takes
    ``allow_auto_create_topics`` but does not hand it to the cluster metadata its requests
    are built from: its metadata requests for a topic asked for auto-creation, and Tansu
    created the topic `wo publish --topic <typo>` named (measured 2026-12-06)."""
    config = getattr(getattr(producer, "_metadata", None), "config", None)
    if not isinstance(config, dict) or "allow_auto_create_topics" not in config:
        producer.close(timeout=0)
        raise RuntimeError(
            "kafka-python's producer no longer keeps its metadata settings where "
            "streams/kafka/producers.py turns topic auto-creation off: update it"
        )
    config["allow_auto_create_topics"] = False
    return producer


def file_producer(settings: Settings) -> KafkaProducer:
    """``wo publish``'s producer: a file's lines go out in order, per key."""
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers.split(","),
        acks="all",
        linger_ms=5,
        allow_auto_create_topics=False,  # never made with the broker's defaults
        retries=5,
        request_timeout_ms=10_000,
        max_block_ms=10_000,
        # A retried request must not overtake the next one: a file's order holds per key.
        max_in_flight_requests_per_connection=1,
        **kafka_python_options(settings),
    )
    return never_creating_topics(producer)


class KafkaCommandPublisher:
    """The API's commands go on the commands topic, like any squad system's, signed."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        signing_key: SigningKey,
        timeout_s: float = 5.0,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._signing_key = signing_key
        self._client_options = dict(client_options or {})
        self._bootstrap = bootstrap
        self._topic = topic
        self._timeout_s = timeout_s
        self._producer: KafkaProducer | None = None

    def publish(self, command: WorkOrderCommand) -> None:
        try:
            if self._producer is None:
                self._producer = never_creating_topics(
                    KafkaProducer(
                        bootstrap_servers=self._bootstrap.split(","),
                        acks="all",
                        retries=3,
                        allow_auto_create_topics=False,  # never made with the broker's defaults
                        request_timeout_ms=int(self._timeout_s * 1000),
                        max_block_ms=int(self._timeout_s * 1000),
                        bootstrap_timeout_ms=int(self._timeout_s * 1000),
                        **self._client_options,
                    )
                )
            value = command.model_dump_json(by_alias=True, exclude_none=True).encode()
            # Signed over exactly the object sent (the worker checks what it reads).
            headers = signed_headers(self._signing_key, value)
            self._producer.send(
                self._topic, key=command.work_order_id.encode(), value=value, headers=headers
            ).get(timeout=self._timeout_s)
        except KafkaError as exc:
            # The caller is told nothing was recorded: the command must not go out later from
            # the producer's buffer either, so the producer is dropped with what it holds.
            self._discard_producer()
            raise CommandNotPublished(f"broker {self._bootstrap} unavailable ({type(exc).__name__})") from exc

    def _discard_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                producer.close(timeout=0)

    def close(self) -> None:
        if self._producer is not None:
            with contextlib.suppress(KafkaError):
                self._producer.close(timeout=5)
