"""The broker as ``wo run`` keeps it: the topics' partition counts at start, and the
embedded broker restarted when it dies (streams/topic_watch.BrokerChild)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import structlog

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.streams.kafka.admin import ensure_topics, open_admin
from workorder_pipeline.streams.kafka.security import kafka_python_options
from workorder_pipeline.wo.embedded_broker import EmbeddedBroker

log = structlog.get_logger(__name__)

#: faust's leader-election topic (faust.assignor.leader_assignor): one partition.
LEADER_TOPIC_SUFFIX = "-__assignor-__leader"

#: Waiting for an external broker at start: the pause after the first failed attempt,
#: doubled after each one up to the cap.
FIRST_RETRY_DELAY_S = 1.0
RETRY_CAP_S = 15.0
#: One attempt: connecting (kafka-python re-tries the connection within it, backing off at
#: most ~1 s) and the metadata request.
ATTEMPT_TIMEOUT_S = 5.0
#: A broker that comes up and answers is seen within this: at worst it comes up as an
#: attempt gives up, and the next attempt starts one capped pause later.
BROKER_SEEN_WITHIN_S = RETRY_CAP_S + ATTEMPT_TIMEOUT_S


def create_topics(settings: Settings) -> list[str]:
    """Create the missing topics with the configured partition count (and, on the embedded
    broker, faust's leader topic, which faust creates only when it starts); the names created."""
    created = ensure_topics(
        settings.bootstrap_servers,
        settings.topics.all(),
        settings.topic_partitions,
        settings.topic_replication_factor,
        client_options=kafka_python_options(settings),
    )
    if settings.embedded_broker:
        created += ensure_topics(
            settings.bootstrap_servers,
            [settings.faust_app_id + LEADER_TOPIC_SUFFIX],
            1,
            settings.topic_replication_factor,
        )
    return created


def partition_counts(
    bootstrap: str, topics: Iterable[str], client_options: Mapping[str, Any], timeout_s: float = 10
) -> dict[str, int]:
    """Partitions of each topic that exists (kafka-python's describe never creates one)."""
    admin = open_admin(bootstrap, timeout_s, client_options)
    try:
        described = admin.describe_topics(sorted(set(topics)))
    finally:
        admin.close()
    return {
        str(topic["name"]): len(topic.get("partitions") or [])
        for topic in described
        if topic.get("error_code", 0) == 0
    }


def wait_for_broker(settings: Settings, max_delay_s: float = RETRY_CAP_S) -> None:
    """Until the external broker answers a metadata request: said once when it does not
    (``broker_unavailable``) and once when it does; retried after 1 s doubling to 15 s, so
    a broker that comes up is seen within BROKER_SEEN_WITHIN_S. kafka-python's own lines
    (about four a second) are left out after the first attempt's: an outage of hours would
    otherwise bury the log in them. SIGTERM or Ctrl-C ends the wait (no handler is installed yet)."""
    delay, since, attempts = FIRST_RETRY_DELAY_S, time.monotonic(), 0
    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    try:
        while (failure := _attempt(settings)) is not None:
            attempts += 1
            if attempts == 1:
                log.warning(
                    "broker_unavailable",
                    bootstrap=settings.bootstrap_servers,
                    error=type(failure).__name__,
                    detail="waiting for it before setting up the topics (said again when it answers)",
                )
                kafka_log.setLevel(logging.CRITICAL)
            time.sleep(delay)
            delay = min(delay * 2, max_delay_s)
    finally:
        kafka_log.setLevel(level)
    if attempts:
        log.info("broker_available", waited_s=round(time.monotonic() - since, 1), failed_attempts=attempts)


def _attempt(settings: Settings) -> Exception | None:
    """One metadata request to the broker; what failed, or None if it answered."""
    try:
        admin = open_admin(settings.bootstrap_servers, ATTEMPT_TIMEOUT_S, kafka_python_options(settings))
        try:
            admin.list_topics()
        finally:
            admin.close()
    except Exception as exc:
        return exc
    return None


class EmbeddedBrokerChild:
    """The embedded broker for the topic watch: what happened to it, and a restart."""

    def __init__(self, broker: EmbeddedBroker, settings: Settings) -> None:
        self._broker = broker
        self._settings = settings

    def death(self) -> str | None:
        if self._broker.running:
            return None
        return f"(pid {self._broker.pid}) exited with code {self._broker.exit_code}"

    async def restart(self) -> None:
        if not self._broker.running:
            self._broker.stop()  # reaps the dead child
            # On the event loop's thread, the main one: the child's death signal is tied to
            # the thread that starts it (wo/children.py). Ready in ~50 ms.
            self._broker.start()
            log.info("embedded_broker_started", bootstrap=self._broker.bootstrap, pid=self._broker.pid)
        created = await asyncio.to_thread(create_topics, self._settings)
        log.info("topics_ready", created=created, partitions=self._settings.topic_partitions)
