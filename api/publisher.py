"""Commands from the API go on the commands topic, like any squad system's."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from api.app import CommandNotPublished
from processors.command_signing import sign
from schemas.commands import WorkOrderCommand
from services.sender_keys import SigningKey


class KafkaCommandPublisher:
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
                self._producer = KafkaProducer(
                    bootstrap_servers=self._bootstrap.split(","),
                    acks="all",
                    retries=3,
                    allow_auto_create_topics=False,  # never made with the broker's defaults
                    request_timeout_ms=int(self._timeout_s * 1000),
                    max_block_ms=int(self._timeout_s * 1000),
                    bootstrap_timeout_ms=int(self._timeout_s * 1000),
                    **self._client_options,
                )
            value = command.model_dump_json(by_alias=True, exclude_none=True).encode()
            # Signed over exactly the object sent (the worker checks what it reads).
            headers = sign(json.loads(value), self._signing_key.key_id, self._signing_key.private_key)
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
