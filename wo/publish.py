"""``wo publish``: send JSON-lines files of events to the inbound topics with kafka-python."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka.errors import KafkaError

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.processors.command_signing import sign
from workorder_pipeline.schemas.errors import InputError
from workorder_pipeline.services.sender_keys import SigningKey
from workorder_pipeline.streams.kafka.producers import file_producer
from workorder_pipeline.streams.kafka.security import kafka_python_options
from workorder_pipeline.wo.broker_keeper import partition_counts
from workorder_pipeline.wo.errors import Unreachable, first_reachable


class PublishError(InputError):
    pass


@dataclass(frozen=True, slots=True)
class PublishReport:
    path: Path
    topic: str
    sent: int


# A contract's family (its name before the version) -> how to find the message key.
_KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "vehicle-alarm": ("plate",),
    "suspect": ("plate",),
    "checkin-failure": ("enterprise", "id"),
    "complaint": ("ticket_id",),
    # Commands of one order must be applied in the order written: one partition per order.
    "workorder-command": ("work_order_id",),
}


def publish_files(
    settings: Settings, paths: Sequence[Path], topic: str | None = None, signing_key: SigningKey | None = None
) -> list[PublishReport]:
    """Publish every line of every file; a file's topic is ``topic`` or is inferred from the file.
    Lines on the commands topic are signed with ``signing_key`` (the worker refuses unsigned ones)."""
    plans = [(path, topic or infer_topic(settings, path)) for path in paths]
    unsigned = [
        path for path, file_topic in plans if file_topic == settings.topics.commands and not signing_key
    ]
    if unsigned:
        raise PublishError(
            f"{unsigned[0]}: commands are signed: pass --key FILE (make one with `wo keys make`)"
        )
    # kafka-python would retry for its whole bootstrap timeout (~30 s), logging each attempt.
    if first_reachable(settings.bootstrap_servers) is None:
        raise Unreachable(
            f"no broker answers at {settings.bootstrap_servers}: is `wo run` running? "
            "(WO_KAFKA_BOOTSTRAP names a cluster)"
        )
    _refuse_missing_topics(settings, [file_topic for _, file_topic in plans])
    try:
        producer = file_producer(settings)
    except KafkaError as exc:
        raise PublishError(f"cannot reach the broker at {settings.bootstrap_servers}: {exc}") from exc
    reports = []
    try:
        for path, file_topic in plans:
            sign = signing_key if file_topic == settings.topics.commands else None
            if file_topic == settings.topics.commands and sign is None:
                raise PublishError(
                    f"{path}: commands are signed: pass --key FILE (make one with `wo keys make`)"
                )
            futures = [
                producer.send(file_topic, key=_key(line), value=line, headers=_signature(line, sign))
                for line in _lines(path)
            ]
            producer.flush(timeout=30)
            failed = [future for future in futures if future.failed()]
            if failed:
                raise PublishError(f"{path}: {len(failed)} of {len(futures)} not sent: {failed[0].exception}")
            reports.append(PublishReport(path, file_topic, len(futures)))
    finally:
        producer.close(timeout=5)
    return reports


def _refuse_missing_topics(settings: Settings, topics: Sequence[str]) -> None:
    """Nothing is sent when a topic is missing: a producer would have the broker create it
    (Tansu does) with the broker's partition count, and the pipeline would never read it."""
    try:
        existing = partition_counts(settings.bootstrap_servers, topics, kafka_python_options(settings))
    except KafkaError as exc:
        raise Unreachable(f"the broker at {settings.bootstrap_servers} did not answer: {exc}") from exc
    missing = [topic for topic in dict.fromkeys(topics) if topic not in existing]
    if missing:
        raise PublishError(
            f"topic {missing[0]!r} does not exist on the broker at {settings.bootstrap_servers}; "
            "nothing sent (`wo run` creates the pipeline's topics: check --topic)"
        )


def infer_topic(settings: Settings, path: Path) -> str:
    """The topic a file's name or first message points to: ``vehicle-alarms.jsonl`` -> alarms."""
    contracts = {**settings.topics.inbound(), settings.topics.commands: "workorder-command/1"}
    by_family = {contract.split("/")[0]: name for name, contract in contracts.items()}
    for name in contracts:
        if path.stem == name or path.stem == name.split(".", 1)[-1]:
            return name
    for line in _lines(path):
        family = str(_document(line).get("schema", "")).split("/")[0]
        if family in by_family:
            return by_family[family]
        break
    raise PublishError(f"{path}: cannot tell which topic it is for; pass --topic")


def _lines(path: Path) -> Iterator[bytes]:
    try:
        with path.open("rb") as handle:
            for line in handle:
                line = line.rstrip(b"\r\n")
                if line.strip():
                    yield line
    except OSError as exc:
        raise PublishError(f"{path}: {exc.strerror}") from exc


def _signature(line: bytes, key: SigningKey | None) -> list[tuple[str, bytes]] | None:
    """The signature headers of a command line (none for a line that is not a JSON object)."""
    document = _document(line)
    return sign(document, key.key_id, key.private_key) if key is not None and document else None


def _document(line: bytes) -> dict[str, Any]:
    try:
        document = json.loads(line)
    except (ValueError, RecursionError):
        return {}
    return document if isinstance(document, dict) else {}


def _key(line: bytes) -> bytes | None:
    """The key the publisher would use (contracts.md), or none for a line that is not an event."""
    document = _document(line)
    value: Any = document
    for part in _KEY_FIELDS.get(str(document.get("schema", "")).split("/")[0], ("",)):
        value = value.get(part) if isinstance(value, dict) else None
    return value.encode() if isinstance(value, str) and value else None
