"""The worker: a faust app for commands, the leader's timers and start-up work, with the
intake consumer (streams/intake_consumer.py) and the producer (streams/outputs.py) as
its services.

Processing guarantee of the commands agent: at least once, with idempotent effects. A
command batch is stored in one transaction with its lifecycle events in the outbox; they
are published and acknowledged by the broker, and only then are its events acked so
faust may commit their offsets. A re-delivered command_id has no second effect.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import faust
import structlog
from aiokafka.helpers import create_ssl_context

from config.settings import Settings
from schemas.workorder import WorkOrder
from services.commands import DISPATCHED, LIFECYCLE, CommandHandler, CommandResult
from services.escalations import Escalations
from services.failures import error_name
from services.intake import InboundMessage, Intake
from streams import metrics, transport
from streams.intake_consumer import METADATA_MAX_AGE_MS, IntakeConsumer
from streams.outputs import Outputs
from streams.retry import Loop, settle

log = structlog.get_logger(__name__)


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
) -> tuple[faust.App, IntakeConsumer]:
    """``recompute_deadlines`` recounts provisional deadlines at start (see services.deadlines)."""
    app = faust.App(
        settings.commands_consumer_group,
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
        consumer_metadata_max_age_ms=METADATA_MAX_AGE_MS,  # see streams/intake_consumer.py
        broker_credentials=broker_credentials(settings),
    )
    topics = settings.topics
    command_topic = app.topic(topics.commands, key_type=bytes, value_type=bytes)
    outputs = Outputs(settings, loop=app.loop, beacon=app.beacon)
    intake_consumer = IntakeConsumer(settings, intake, outputs, clock, loop=app.loop, beacon=app.beacon)

    async def process_commands(messages: Sequence[InboundMessage]) -> CommandResult:
        result = await asyncio.to_thread(commands.handle, messages, clock())
        await outputs.publish((), result.dead_letters)
        await publish_outbox()
        return result

    async def set_aside(message: InboundMessage, error: BaseException) -> CommandResult:
        """A command that failed alone, permanently: refused where it can be recorded, and
        dead-lettered; the next command goes on."""
        result = await asyncio.to_thread(commands.unprocessable, message, error_name(error), clock())
        await outputs.publish((), result.dead_letters)
        await publish_outbox()
        return result

    async def publish_outbox() -> None:
        """Publish what command handling wrote to the outbox (this batch's, and any a crashed
        worker left), in the order it was written, then mark it published. A row the broker
        refuses for good (too large, say) is set aside with an error in the log."""
        while rows := await asyncio.to_thread(commands.outbox):
            await settle(send_outbox_rows, rows, skip_outbox_row, Loop.outbox)

    async def send_outbox_rows(rows: Sequence[Any]) -> None:
        topics_by_name = {LIFECYCLE: topics.lifecycle, DISPATCHED: topics.dispatched}
        pending = [
            await outputs.send(topics_by_name[row["topic"]], row["key"].encode(), row["payload"].encode())
            for row in rows
        ]
        await asyncio.gather(*pending)
        await asyncio.to_thread(commands.published, [row["id"] for row in rows], clock())

    async def skip_outbox_row(row: Any, error: BaseException) -> None:
        log.error(
            "outbox_row_not_published", outbox_id=row["id"], topic=row["topic"], error=error_name(error)
        )
        await asyncio.to_thread(commands.published, [row["id"]], clock())

    @app.agent(command_topic, name="commands")
    async def command_agent(stream: Any) -> AsyncIterator[None]:
        async for events in stream.noack_take(settings.intake_batch_size, settings.intake_batch_seconds):
            messages = [_inbound_message(event) for event in events]
            # Transient failures are waited out; a command that fails permanently is isolated
            # and set aside, and the commands after it go on.
            results = await settle(process_commands, messages, set_aside, Loop.commands)
            for event in events:
                await stream.ack(event)
            for result in results:
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
            await outputs.send(
                topics.escalations,
                message.recipient.encode(),
                message.model_dump_json(by_alias=True).encode(),
            )
            for message in messages
        ]
        await asyncio.gather(*pending)
        await asyncio.to_thread(escalations.published, messages, clock())
        for message in messages:
            metrics.record_escalation(message.level, message.unit, message.kind)
        log.info("escalations_published", fired=fired, published=len(messages))

    app.timer(interval=settings.escalation_check_seconds, on_leader=True)(escalate)

    async def start() -> None:
        """Start publishing; publish what an earlier worker stored but never published (orders,
        outbox) and orders whose provisional deadline the loaded calendar changed; then
        start the intake consumer."""
        await app.add_runtime_dependency(outputs)
        await publish_outbox()
        orders = await asyncio.to_thread(intake.undispatched)
        if orders:
            await outputs.publish(orders)
            await asyncio.to_thread(intake.dispatched, orders, clock())
            log.info("undispatched_orders_published", count=len(orders))
        if recompute_deadlines is not None:
            changed = await asyncio.to_thread(recompute_deadlines)
            if changed:
                await outputs.publish(changed)
                log.info("provisional_deadlines_recomputed", count=len(changed))
        await app.add_runtime_dependency(intake_consumer)

    app.task(start)
    return app, intake_consumer


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
