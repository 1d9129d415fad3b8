"""The worker's work besides the batches: start-up, the leader's escalation check, the outbox
relay, re-publishing, and what happens when the topics are lost and come back. Every piece
runs through streams/resilience (waits out outages, never raises into faust)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import faust
import structlog

from config.settings import Settings
from schemas.workorder import WorkOrder
from services.commands import CommandHandler
from services.dead_letters import Retention
from services.escalations import Escalations
from services.failures import error_name
from services.intake import Intake
from services.ports import OutboxTopic
from streams import metrics
from streams.broker_probe import BrokerProbe
from streams.intake_consumer import BatchConsumer
from streams.outputs import Outputs
from streams.resilience import Task, every, until_done
from streams.retry import settle
from streams.supervision import LAG_REFRESH_SECONDS, LagProbe
from streams.topic_watch import TOPIC_CHECK_SECONDS, TopicWatch

log = structlog.get_logger(__name__)

#: How often the outbox is looked at besides after each command batch (rows a failed or
#: crashed worker left behind).
OUTBOX_RELAY_SECONDS = 10.0
#: How often the leader deletes dead letters' originals past their retention.
RETENTION_PURGE_SECONDS = 3600.0


class Background:
    def __init__(
        self,
        settings: Settings,
        intake: Intake,
        commands: CommandHandler,
        escalations: Escalations,
        outputs: Outputs,
        clock: Callable[[], datetime],
        recompute_deadlines: Callable[[], list[WorkOrder]] | None,
        retention: Retention | None = None,
    ) -> None:
        self._settings = settings
        self._intake = intake
        self._commands = commands
        self._escalations = escalations
        self._outputs = outputs
        self._clock = clock
        self._recompute_deadlines = recompute_deadlines
        self._outbox_lock = asyncio.Lock()
        self._retention = retention

    async def start(
        self,
        app: faust.App,
        consumers: Sequence[BatchConsumer],
        probe: BrokerProbe,
        lag: LagProbe,
        watch: TopicWatch | None,
    ) -> None:
        """Start publishing; publish what an earlier worker stored but never published and
        orders whose provisional deadline the loaded calendar changed; then start the
        consumers (intake; commands in exactly-once mode) and the periodic jobs (the
        escalation check in this task, until it stops)."""
        await app.add_runtime_dependency(self._outputs)
        await app.add_runtime_dependency(probe)
        app.add_future(every(Task.lag, LAG_REFRESH_SECONDS, lag.refresh))
        as_expected = (lambda: watch.as_expected) if watch is not None else (lambda: True)
        app.add_future(every(Task.outbox, OUTBOX_RELAY_SECONDS, self.publish_outbox, when=as_expected))
        if watch is not None:
            app.add_future(every(Task.topics, TOPIC_CHECK_SECONDS, watch.check))
        await until_done(Task.republish, lambda _: self.republish(), None)
        await until_done(Task.deadlines, lambda _: self.recount_deadlines(), None)
        for consumer in consumers:
            await app.add_runtime_dependency(consumer)
        if self._retention is not None:
            app.add_future(every(Task.retention, RETENTION_PURGE_SECONDS, self.purge, when=app.is_leader))
        interval = self._settings.escalation_check_seconds
        await every(Task.escalations, interval, self.escalate, when=app.is_leader)

    async def publish_outbox(self) -> None:
        """Publish what command handling wrote to the outbox (this batch's, and any a crashed
        worker left), in the order it was written, then mark it published. One relay at a
        time, so the order holds. A row the broker refuses for good (too large, say) is set
        aside with an error in the log, and the rows after it go out."""
        async with self._outbox_lock:
            while rows := await asyncio.to_thread(self._commands.outbox):
                await settle(Task.outbox, self._send_outbox_rows, rows, self._skip_outbox_row)

    async def _send_outbox_rows(self, rows: Sequence[Any]) -> None:
        topics = self._settings.topics
        topics_by_name = {OutboxTopic.lifecycle: topics.lifecycle, OutboxTopic.dispatched: topics.dispatched}
        send = self._outputs.send
        pending = [
            await send(topics_by_name[row["topic"]], row["key"].encode(), row["payload"].encode())
            for row in rows
        ]
        await asyncio.gather(*pending)
        await asyncio.to_thread(self._commands.published, [row["id"] for row in rows], self._clock())

    async def _skip_outbox_row(self, row: Any, error: BaseException) -> None:
        log.error(
            "outbox_row_not_published", outbox_id=row["id"], topic=row["topic"], error=error_name(error)
        )
        await asyncio.to_thread(self._commands.published, [row["id"]], self._clock())

    async def escalate(self) -> None:
        """Leader only: fire what came due (each once), then publish what is not published yet."""
        fired = await asyncio.to_thread(self._escalations.fire, self._clock())
        messages = await asyncio.to_thread(self._escalations.pending)
        if not messages:
            return
        pending = [
            await self._outputs.send(
                self._settings.topics.escalations,
                message.recipient.encode(),
                message.model_dump_json(by_alias=True).encode(),
            )
            for message in messages
        ]
        await asyncio.gather(*pending)
        await asyncio.to_thread(self._escalations.published, messages, self._clock())
        for message in messages:
            metrics.record_escalation(message.level, message.unit, message.kind)
        log.info("escalations_published", fired=fired, published=len(messages))

    async def purge(self) -> None:
        """Leader only: delete dead letters' originals past their retention."""
        if self._retention is not None:
            deleted = await asyncio.to_thread(self._retention.purge, self._clock())
            if deleted:
                log.info("dead_letter_originals_purged", count=deleted)

    async def republish(self) -> None:
        """Publish what the database holds as not yet published: the outbox, orders stored
        but never dispatched (a crash, or a broker that lost them)."""
        await self.publish_outbox()
        orders = await asyncio.to_thread(self._intake.undispatched)
        if orders:
            await self._outputs.publish(orders)
            await asyncio.to_thread(self._intake.dispatched, orders, self._clock())
            log.info("undispatched_orders_published", count=len(orders))

    async def recount_deadlines(self) -> None:
        if self._recompute_deadlines is None:
            return
        changed = await asyncio.to_thread(self._recompute_deadlines)
        if changed:
            await self._outputs.publish(changed)
            log.info("provisional_deadlines_recomputed", count=len(changed))
