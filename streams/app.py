"""The worker: a faust app for commands, the leader's timers and start-up work, with the
intake consumer (streams/intake_consumer.py) and the producer (streams/outputs.py) as
its services.

Processing guarantee of the commands agent: at least once, with idempotent effects. A
command batch is stored in one transaction with its lifecycle events in the outbox; they
are published and acknowledged by the broker, and only then are its events acked so
faust may commit their offsets. A re-delivered command_id has no second effect. In
exactly-once mode there is no commands agent: streams/command_consumer.py consumes the
commands and commits their offsets in the Kafka transaction of their outputs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import faust
import structlog

from workorder_pipeline.config.settings import ProcessingGuarantee, Settings
from workorder_pipeline.schemas.workorder import WorkOrder
from workorder_pipeline.services.clock import utc_now
from workorder_pipeline.services.commands import CommandHandler, CommandResult
from workorder_pipeline.services.dead_letters import Retention
from workorder_pipeline.services.escalations import Escalations
from workorder_pipeline.services.failures import error_name
from workorder_pipeline.services.intake import InboundMessage, Intake
from workorder_pipeline.services.notifications import Notifier
from workorder_pipeline.services.report_archive import MonthlyReports
from workorder_pipeline.streams import metrics, transport
from workorder_pipeline.streams.background import Background
from workorder_pipeline.streams.batch_consumer import METADATA_MAX_AGE_MS, BatchConsumer
from workorder_pipeline.streams.broker_probe import BrokerProbe
from workorder_pipeline.streams.command_consumer import CommandConsumer, log_commands, record_headers
from workorder_pipeline.streams.intake_consumer import IntakeConsumer
from workorder_pipeline.streams.kafka.security import faust_credentials
from workorder_pipeline.streams.outputs import Outputs
from workorder_pipeline.streams.resilience import Task, until_done
from workorder_pipeline.streams.retry import settle
from workorder_pipeline.streams.supervision import LagProbe, faust_assigned
from workorder_pipeline.streams.topic_watch import BrokerChild, TopicWatch

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Worker:
    app: faust.App
    intake_consumer: IntakeConsumer
    #: The offsets behind the lag gauge (streams/supervision).
    lag: LagProbe


def build_app(
    settings: Settings,
    intake: Intake,
    commands: CommandHandler,
    escalations: Escalations,
    clock: Callable[[], datetime] = utc_now,
    recompute_deadlines: Callable[[], list[WorkOrder]] | None = None,
    expected_topics: Mapping[str, int] | None = None,
    broker_child: BrokerChild | None = None,
    retention: Retention | None = None,
    notifier: Notifier | None = None,
    reports: MonthlyReports | None = None,
) -> Worker:
    """``recompute_deadlines`` recounts provisional deadlines at start (see services.deadlines);
    ``expected_topics``: partitions of each topic as set up at start (checked periodically,
    streams/topic_watch); ``broker_child``: the embedded broker, restarted if it dies;
    ``notifier``: sends the notifications (the leader's, services/notifications)."""
    app = _faust_app(settings)
    outputs = Outputs(settings, loop=app.loop, beacon=app.beacon)
    intake_consumer = IntakeConsumer(settings, intake, outputs, clock, loop=app.loop, beacon=app.beacon)
    consumers: list[BatchConsumer] = [intake_consumer]
    background = Background(
        settings,
        intake,
        commands,
        escalations,
        outputs,
        clock,
        recompute_deadlines,
        retention,
        notifier,
        reports,
    )
    commands_assigned = _commands_path(app, settings, commands, outputs, background, clock, consumers)
    probe = BrokerProbe(settings, loop=app.loop, beacon=app.beacon)
    lag = LagProbe(
        probe,
        [
            (settings.consumer_group, intake_consumer.assigned),
            (settings.commands_consumer_group, commands_assigned),
        ],
        [*settings.topics.inbound(), settings.topics.commands],
    )
    gate = _TopicsGate(app, consumers, outputs, background)
    watch = (
        TopicWatch(probe, expected_topics, gate.lost, gate.restored, broker_child)
        if expected_topics
        else None
    )

    async def start() -> None:
        await background.start(app, consumers, probe, lag, watch)

    app.task(start)
    return Worker(app, intake_consumer, lag)


def _commands_path(
    app: faust.App,
    settings: Settings,
    commands: CommandHandler,
    outputs: Outputs,
    background: Background,
    clock: Callable[[], datetime],
    consumers: list[BatchConsumer],
) -> Callable[[], Iterable[tuple[str, int]]]:
    """Exactly once: a consumer of its own (added to ``consumers``); at least once: a faust
    agent. Returns what tells the commands' partitions assigned to this worker."""
    if settings.processing_guarantee is ProcessingGuarantee.exactly_once:
        command_consumer = CommandConsumer(
            settings, commands, outputs, clock, loop=app.loop, beacon=app.beacon
        )
        consumers.append(command_consumer)
        return command_consumer.assigned
    _command_agent(app, settings, commands, outputs, background, clock)
    return faust_assigned(app)


@dataclass(frozen=True, slots=True)
class _TopicsGate:
    """What the topic check does when the topics are lost (consumers and producer stop) and
    when they come back (they start again, and what was left unpublished goes out)."""

    app: faust.App
    consumers: Sequence[BatchConsumer]
    outputs: Outputs
    background: Background

    async def lost(self) -> None:
        for consumer in self.consumers:
            await consumer.suspend()
        await self.outputs.shut()

    async def restored(self) -> None:
        await self.outputs.reopen()
        for consumer in self.consumers:
            await consumer.resume()
        self.app.add_future(until_done(Task.republish, lambda _: self.background.republish(), None))


def _command_agent(
    app: faust.App,
    settings: Settings,
    commands: CommandHandler,
    outputs: Outputs,
    background: Background,
    clock: Callable[[], datetime],
) -> None:
    """At least once: the faust agent that handles commands; the relay publishes the outbox."""
    command_topic = app.topic(settings.topics.commands, key_type=bytes, value_type=bytes)

    async def process_commands(messages: Sequence[InboundMessage]) -> CommandResult:
        result = await asyncio.to_thread(commands.handle, messages, clock())
        await outputs.publish((), result.dead_letters)
        await background.publish_outbox()
        return result

    async def set_aside(message: InboundMessage, error: BaseException) -> CommandResult:
        """A command that failed alone, permanently: refused where it can be recorded, and
        dead-lettered; the next command goes on."""
        result = await asyncio.to_thread(commands.unprocessable, message, error_name(error), clock())
        await outputs.publish((), result.dead_letters)
        await background.publish_outbox()
        return result

    @app.agent(command_topic, name="commands")
    async def command_agent(stream: Any) -> AsyncIterator[None]:
        async for events in stream.noack_take(settings.intake_batch_size, settings.intake_batch_seconds):
            messages = [_inbound_message(event) for event in events]
            # Transient failures are waited out; a command that fails permanently is isolated
            # and set aside, and the commands after it go on.
            results = await settle(Task.commands, process_commands, messages, set_aside)
            for event in events:
                await stream.ack(event)
            for result in results:
                metrics.record_commands(result)
                log_commands(result)
            yield None


def _faust_app(settings: Settings) -> faust.App:
    return faust.App(
        settings.faust_app_id,
        broker=transport.broker_url(settings.bootstrap_servers, settings.consumer_fetch_max_wait_ms),
        datadir=str(settings.data_dir / "faust"),
        web_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        broker_rebalance_timeout=settings.kafka_rebalance_timeout_s,
        broker_session_timeout=settings.kafka_session_timeout_s,
        broker_heartbeat_interval=settings.kafka_heartbeat_interval_s,
        broker_commit_every=settings.intake_batch_size,
        consumer_metadata_max_age_ms=METADATA_MAX_AGE_MS,  # see streams/batch_consumer.py
        broker_credentials=faust_credentials(settings),
        # Stopping (or a rebalance) does not wait for the command batch in hand to be acked: one
        # that waits out a database outage would hold SIGTERM forever. Its offsets are not
        # committed, so it is delivered again; a command_id has no second effect.
        stream_wait_empty=False,
    )


def _inbound_message(event: Any) -> InboundMessage:
    message = event.message
    return InboundMessage(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
        headers=record_headers(message.headers),
    )
