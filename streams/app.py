"""The faust app: inbound topics -> intake service -> dispatched and dead-letter topics.

Processing guarantee: at least once, with idempotent effects. An intake batch is
stored in one transaction, its messages are published and acknowledged by the
broker, and only then are its events acked so faust may commit their offsets. A
crash anywhere before that re-delivers the batch; publisher ids already stored make
no second order, and orders stored but never published are published then.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import faust
import structlog
from aiokafka.helpers import create_ssl_context

from config.settings import Settings
from schemas.deadletter import DeadLetter
from schemas.workorder import WorkOrder
from services.commands import DISPATCHED, LIFECYCLE, CommandHandler, CommandResult
from services.escalations import Escalations
from services.intake import InboundMessage, Intake, IntakeResult
from streams import metrics, transport
from streams.metrics import INTAKE_BATCH_FAILURES

log = structlog.get_logger(__name__)

RETRY_FIRST_DELAY_S = 0.5
RETRY_MAX_DELAY_S = 30.0


def broker_credentials(settings: Settings) -> Any:
    """faust's form of the Kafka security settings (None: PLAINTEXT)."""
    options = settings.kafka_client_options()
    protocol = options["security_protocol"]
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol.endswith("SSL"):
        context = create_ssl_context(
            cafile=options.get("ssl_cafile"),
            certfile=options.get("ssl_certfile"),
            keyfile=options.get("ssl_keyfile"),
        )
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    return faust.SASLCredentials(
        username=options["sasl_plain_username"],
        password=options["sasl_plain_password"],
        mechanism=options["sasl_mechanism"],
        ssl_context=context,
    )


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_app(
    settings: Settings,
    intake: Intake,
    commands: CommandHandler,
    escalations: Escalations,
    clock: Callable[[], datetime] = utc_now,
    recompute_deadlines: Callable[[], list[WorkOrder]] | None = None,
) -> faust.App:
    """``recompute_deadlines`` recounts provisional deadlines at start (see services.deadlines)."""
    app = faust.App(
        settings.consumer_group,
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
        broker_credentials=broker_credentials(settings),
    )
    topics = settings.topics
    inbound = app.topic(*topics.inbound(), key_type=bytes, value_type=bytes)
    dispatched = app.topic(topics.dispatched, key_type=bytes, value_type=bytes)
    dead_letters = app.topic(topics.dead_letters, key_type=bytes, value_type=bytes)
    command_topic = app.topic(topics.commands, key_type=bytes, value_type=bytes)
    lifecycle = app.topic(topics.lifecycle, key_type=bytes, value_type=bytes)
    escalation_topic = app.topic(topics.escalations, key_type=bytes, value_type=bytes)

    async def publish_dead_letters(letters: list[DeadLetter]) -> list[Awaitable[Any]]:
        pending = []
        for letter in letters:
            key = letter.source.key  # base64 in the letter; the Kafka key is the original bytes
            pending.append(
                await dead_letters.send(
                    key=base64.b64decode(key) if key is not None else None,
                    value=letter.model_dump_json(by_alias=True).encode(),
                )
            )
        return pending

    async def publish(result: IntakeResult) -> None:
        """Publish a batch's outputs and wait until the broker has them all."""
        pending = await publish_dead_letters(result.dead_letters)
        pending += [await _send_order(dispatched, order) for order in result.to_dispatch]
        await asyncio.gather(*pending)

    async def process(events: list[Any]) -> IntakeResult:
        messages = [_inbound_message(event) for event in events]
        with metrics.INTAKE_BATCH_SECONDS.time():
            result = await asyncio.to_thread(intake.handle, messages, clock())
            await publish(result)
            await asyncio.to_thread(intake.dispatched, result.to_dispatch, clock())
        return result

    @app.agent(inbound, name="intake")
    async def intake_agent(stream: Any) -> AsyncIterator[None]:
        # noack_take, not take_events: take_events acks its buffer even when the batch
        # fails, which would let faust commit offsets of events never processed.
        async for events in stream.noack_take(settings.intake_batch_size, settings.intake_batch_seconds):
            result = await _until_done(process, list(events))
            for event in events:
                await stream.ack(event)
            metrics.record_intake(result, clock())
            for order in result.to_dispatch:
                metrics.WORK_ORDERS_DISPATCHED.labels(unit=order.unit).inc()
            _log_batch(result, len(events))
            yield None

    async def process_commands(events: list[Any]) -> CommandResult:
        messages = [_inbound_message(event) for event in events]
        result = await asyncio.to_thread(commands.handle, messages, clock())
        await asyncio.gather(*await publish_dead_letters(result.dead_letters))
        await publish_outbox()
        return result

    async def publish_outbox() -> None:
        """Publish what command handling wrote to the outbox (this batch's, and any a crashed
        worker left), in the order it was written, then mark it published."""
        topics_by_name = {LIFECYCLE: lifecycle, DISPATCHED: dispatched}
        while rows := await asyncio.to_thread(commands.outbox):
            pending = [
                await topics_by_name[row["topic"]].send(
                    key=row["key"].encode(), value=row["payload"].encode()
                )
                for row in rows
            ]
            await asyncio.gather(*pending)
            await asyncio.to_thread(commands.published, [row["id"] for row in rows], clock())

    @app.agent(command_topic, name="commands")
    async def command_agent(stream: Any) -> AsyncIterator[None]:
        async for events in stream.noack_take(settings.intake_batch_size, settings.intake_batch_seconds):
            result = await _until_done(process_commands, list(events))
            for event in events:
                await stream.ack(event)
            metrics.record_commands(result)
            for outcome in result.outcomes:
                log.info(
                    "command",
                    command_id=outcome.command.command_id,
                    work_order_id=outcome.command.work_order_id,
                    action=outcome.command.action.value,
                    outcome=outcome.outcome,
                    reason=outcome.refusal.reason if outcome.refusal else None,
                )
            yield None

    async def escalate() -> None:
        """Leader only: fire what came due (each once), then publish what is not published yet."""
        fired = await asyncio.to_thread(escalations.fire, clock())
        messages = await asyncio.to_thread(escalations.pending)
        if not messages:
            return
        pending = [
            await escalation_topic.send(
                key=message.recipient.encode(), value=message.model_dump_json(by_alias=True).encode()
            )
            for message in messages
        ]
        await asyncio.gather(*pending)
        await asyncio.to_thread(escalations.published, messages, clock())
        for message in messages:
            metrics.record_escalation(message.level, message.unit, message.kind)
        log.info("escalations_published", fired=fired, published=len(messages))

    app.timer(interval=settings.escalation_check_seconds, on_leader=True)(escalate)

    async def publish_undispatched() -> None:
        """Orders stored by a worker that died before publishing them are published now; so
        are orders whose provisional deadline the loaded calendar changed."""
        await publish_outbox()
        orders = await asyncio.to_thread(intake.undispatched)
        if orders:
            await asyncio.gather(*[await _send_order(dispatched, order) for order in orders])
            await asyncio.to_thread(intake.dispatched, orders, clock())
            log.info("undispatched_orders_published", count=len(orders))
        if recompute_deadlines is not None:
            changed = await asyncio.to_thread(recompute_deadlines)
            if changed:
                await asyncio.gather(*[await _send_order(dispatched, order) for order in changed])
                log.info("provisional_deadlines_recomputed", count=len(changed))

    app.task(publish_undispatched)
    return app


async def _send_order(topic: faust.TopicT, order: WorkOrder) -> Awaitable[Any]:
    """The order to its unit, and a copy to each unit in ``copied_to``: one awaitable for all."""
    value = order.dispatch_message().model_dump_json(by_alias=True).encode()
    sent = [await topic.send(key=unit.encode(), value=value) for unit in (order.unit, *order.copied_to)]
    return asyncio.gather(*sent)


Outcome = TypeVar("Outcome")


async def _until_done(process: Callable[[list[Any]], Awaitable[Outcome]], events: list[Any]) -> Outcome:
    """Retry a failed batch with backoff: its events stay unacked, so nothing is committed.

    A database or broker outage pauses intake here instead of losing the batch. Every
    effect of a batch is idempotent, so a retry after a partial success is safe.
    """
    delay = RETRY_FIRST_DELAY_S
    for attempt in itertools.count(1):
        try:
            return await process(events)
        except Exception as exc:
            INTAKE_BATCH_FAILURES.inc()
            log.error(
                "intake_batch_failed",
                attempt=attempt,
                retry_in_s=delay,
                error=type(exc).__name__,
                detail=str(exc)[:500],
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_DELAY_S)
    raise AssertionError("unreachable")


def _inbound_message(event: Any) -> InboundMessage:
    message = event.message
    return InboundMessage(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        timestamp_ms=int(message.timestamp * 1000) if message.timestamp else None,
    )


def _log_batch(result: IntakeResult, size: int) -> None:
    # Counts and ids only: plates and complainants stay out of the log.
    provisional = [order.id for order in result.created if order.deadline_provisional]
    if provisional:
        log.warning(
            "provisional_deadlines",
            orders=provisional,
            detail="the official holiday schedule of a year they count into is not loaded: add it "
            "to policy/calendar.yaml; they are recomputed when a worker starts with it",
        )
    for letter in result.dead_letters:
        log.warning(
            "message_dead_lettered",
            reason=letter.reason.value,
            detail=letter.detail,
            topic=letter.source.topic,
            partition=letter.source.partition,
            offset=letter.source.offset,
        )
    log.info(
        "intake_batch",
        messages=size,
        created=len(result.created),
        merged=sum(result.merged.values()),
        suppressed=sum(result.suppressed.values()),
        redelivered=sum(result.redelivered.values()),
        dead_lettered=len(result.dead_letters),
        dispatched=len(result.to_dispatch),
    )
