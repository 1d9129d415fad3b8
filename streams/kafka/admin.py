"""kafka-python's admin client, and topic set-up against any Kafka-compatible broker.

:func:`ensure_topics` creates topics explicitly with the intended partition count,
which both Tansu and production brokers need (do not rely on auto-creation). It works
against any Kafka-compatible bootstrap address, not only the embedded broker.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

import structlog
from kafka import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from workorder_pipeline.schemas.errors import BrokerError

__all__ = ["TopicSetupError", "ensure_topics", "open_admin"]

log = structlog.get_logger(__name__)

_POLL_INTERVAL_S = 0.05
# Kafka's own rule for topic names (Tansu accepts anything, so we check it here).
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]{1,249}")


class TopicSetupError(BrokerError, RuntimeError):
    """Topics could not be created or did not show up in the broker's metadata."""


class TopicSetupTimedOut(TopicSetupError):
    """The broker did not answer, or the topics did not show up, before the deadline: it may
    be gone or still coming up (unlike a refusal, which waiting does not change)."""


def open_admin(bootstrap: str, timeout_s: float, client_options: Mapping[str, Any]) -> Any:
    """A connected KafkaAdminClient, or the error why not, without leaking its I/O thread.

    kafka-python 3 starts a background I/O thread before bootstrapping; when the
    bootstrap fails the constructor raises and the thread would stay behind, so we
    run ``__init__`` ourselves and stop that thread on failure.
    """
    timeout_ms = max(int(timeout_s * 1000), 100)
    admin: Any = KafkaAdminClient.__new__(KafkaAdminClient)
    try:
        admin.__init__(
            bootstrap_servers=bootstrap,
            client_id="wo-embedded-broker",
            bootstrap_timeout_ms=timeout_ms,
            request_timeout_ms=max(timeout_ms, 1000),
            reconnect_backoff_max_ms=1000,
            **client_options,
        )
    except BaseException:
        net = getattr(admin, "_net", None)
        if net is not None:
            with contextlib.suppress(Exception):
                net.stop()
        raise
    return admin


def is_retriable(exc: BaseException) -> bool:
    return isinstance(exc, OSError) or (
        isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))
    )


def _validate_topic_request(names: list[str], partitions: int, replication_factor: int) -> None:
    # Tansu accepts 0 partitions, any replication factor and any name; Kafka does not.
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    if replication_factor < 1:
        raise ValueError(f"replication_factor must be >= 1, got {replication_factor}")
    bad = [n for n in names if n in (".", "..") or not _TOPIC_NAME.fullmatch(n)]
    if bad:
        raise ValueError(f"invalid topic name(s) {bad}: use 1-249 of ASCII letters, digits, '.', '_', '-'")


def _not_ready_reason(topic: dict[str, Any] | None) -> str | None:
    if topic is None:
        return "not in metadata"
    if topic.get("error_code", 0) != 0:
        return str(for_code(topic["error_code"]).__name__)
    partitions = topic.get("partitions") or []
    if not partitions:
        return "no partitions yet"
    for partition in partitions:
        if partition.get("error_code", 0) != 0 or partition.get("leader_id", -1) < 0:
            return f"partition {partition.get('partition_index')} has no leader"
    return None


def ensure_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int,
    replication_factor: int,
    timeout_s: float = 20,
    client_options: Mapping[str, Any] = MappingProxyType({}),
) -> list[str]:
    """Create the missing ``topics`` and wait until the metadata shows them all.
    ``client_options``: security settings (security.kafka_python_options) for a production broker.

    Returns the names this call created (in request order); topics that already
    exist are left as they are (a different partition count is logged, not changed).
    Connection and other retriable errors are retried until ``timeout_s``; then, or
    on a non-retriable broker error, :class:`TopicSetupError` names ``bootstrap``.
    """
    names = list(dict.fromkeys(topics))
    _validate_topic_request(names, partitions, replication_factor)
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    if not names:
        return []
    deadline = time.monotonic() + timeout_s
    created: list[str] = []
    last_error: BaseException | None = None
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            admin = open_admin(bootstrap, remaining, client_options)
            try:
                _create_missing(admin, names, partitions, replication_factor, created, remaining)
                pending, counts = _wait_for_topics(admin, names, deadline)
            finally:
                admin.close()
        except TopicSetupError:
            raise
        except Exception as exc:
            if not is_retriable(exc):
                raise TopicSetupError(
                    f"cannot create topics {names} on Kafka at {bootstrap}: {exc!r}"
                ) from exc
            last_error = exc
            log.debug("topic setup failed, retrying", bootstrap=bootstrap, error=repr(exc))
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))
            continue
        if not pending:
            return _ready(bootstrap, names, created, counts, partitions, replication_factor)
        last_error = TopicSetupError(f"not ready in the metadata: {pending}")
        break
    raise TopicSetupTimedOut(
        f"could not set up topics {names} on Kafka at {bootstrap} within {timeout_s:g} s "
        f"(is the broker running and reachable?); last error: {last_error!r}"
    )


def _ready(
    bootstrap: str,
    names: list[str],
    created: list[str],
    counts: Mapping[str, int],
    partitions: int,
    replication_factor: int,
) -> list[str]:
    """Log what was created and existing topics of another partition count; returns the
    names created, in request order."""
    created_order = [n for n in names if n in created]
    if created_order:
        log.info(
            "topics created",
            bootstrap=bootstrap,
            topics=created_order,
            partitions=partitions,
            replication_factor=replication_factor,
        )
    for name, count in counts.items():
        if name not in created and count != partitions:
            log.warning(
                "existing topic has a different partition count; left unchanged",
                topic=name,
                partitions=count,
                requested=partitions,
            )
    return created_order


def _create_missing(
    admin: Any,
    names: list[str],
    partitions: int,
    replication_factor: int,
    created: list[str],
    timeout_s: float,
) -> None:
    existing = set(admin.list_topics())
    missing = [n for n in names if n not in existing]
    if not missing:
        return
    brokers = admin.describe_cluster().get("brokers") or []
    if brokers and replication_factor > len(brokers):
        raise TopicSetupError(
            f"replication_factor {replication_factor} exceeds the {len(brokers)} broker(s) in the cluster"
        )
    response = admin.create_topics(
        {n: {"num_partitions": partitions, "replication_factor": replication_factor} for n in missing},
        timeout_ms=max(int(timeout_s * 1000), 100),
        raise_errors=False,
    )
    for result in response["topics"]:
        error = for_code(result["error_code"])
        name = result["name"]
        if result["error_code"] == 0:
            created.append(name)
        elif error is TopicAlreadyExistsError:
            continue  # created concurrently by someone else: fine
        elif getattr(error, "retriable", False):
            raise error(f"creating topic {name!r}: {result.get('error_message')}")
        else:
            raise TopicSetupError(
                f"the broker refused to create topic {name!r}: "
                f"{error.__name__}: {result.get('error_message')}"
            )


def _wait_for_topics(admin: Any, names: list[str], deadline: float) -> tuple[dict[str, str], dict[str, int]]:
    """Poll the metadata until every topic has all its partitions led, or the deadline.

    Returns what is still not ready (empty when done) and each topic's partition count.
    """
    while True:
        described = {t.get("name"): t for t in admin.describe_topics(names)}
        pending: dict[str, str] = {}
        for name in names:
            reason = _not_ready_reason(described.get(name))
            if reason is not None:
                pending[name] = reason
        if not pending or time.monotonic() >= deadline:
            counts = {
                name: len(described[name].get("partitions") or []) for name in names if name in described
            }
            return pending, counts
        time.sleep(_POLL_INTERVAL_S)
