"""When the worker's work besides the batches runs: start-up, the leader's escalation check,
the outbox relay, re-publishing, and what happens when the topics are lost and come back.
What each does is in services/publishing; here each is scheduled and run through
streams/resilience (waits out outages, never raises into faust)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import faust
import structlog

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.schemas.workorder import WorkOrder
from workorder_pipeline.services.commands import CommandHandler
from workorder_pipeline.services.dead_letters import Retention
from workorder_pipeline.services.escalations import Escalations
from workorder_pipeline.services.intake import Intake
from workorder_pipeline.services.notifications import Notifier
from workorder_pipeline.services.ports import OutboxTopic
from workorder_pipeline.services.publishing import OutboxRelay, OutboxRow, Recovery, publish_escalations
from workorder_pipeline.services.report_archive import MonthlyReports
from workorder_pipeline.streams import metrics
from workorder_pipeline.streams.batch_consumer import BatchConsumer
from workorder_pipeline.streams.broker_probe import BrokerProbe
from workorder_pipeline.streams.outputs import Outputs
from workorder_pipeline.streams.resilience import Task, every, until_done
from workorder_pipeline.streams.retry import settle
from workorder_pipeline.streams.supervision import LAG_REFRESH_SECONDS, LagProbe
from workorder_pipeline.streams.topic_watch import TOPIC_CHECK_SECONDS, TopicWatch

log = structlog.get_logger(__name__)

#: How often the outbox is looked at besides after each command batch (rows a failed or
#: crashed worker left behind).
OUTBOX_RELAY_SECONDS = 10.0
#: How often the leader plans notifications and sends those due (retries, quiet hours' end).
NOTIFY_SECONDS = 5.0
#: How often the leader deletes dead letters' originals past their retention.
RETENTION_PURGE_SECONDS = 3600.0
#: How often the leader looks whether last month's report is kept (made within the hour after
#: a month ends, or after a worker that was down then starts).
REPORT_CHECK_SECONDS = 900.0
#: A worker makes no report in its first minutes: a restart (or a test's short run) does not
#: spend its start rendering a PDF; a leader that stays makes last month's within ~25 minutes.
REPORT_SETTLE_SECONDS = 600.0


async def _settle_outbox(
    process: Callable[[Sequence[OutboxRow]], Awaitable[None]],
    rows: Sequence[OutboxRow],
    give_up: Callable[[OutboxRow, BaseException], Awaitable[None]],
) -> object:
    return await settle(Task.outbox, process, rows, give_up)


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
        notifier: Notifier | None = None,
        reports: MonthlyReports | None = None,
    ) -> None:
        self._settings = settings
        self._notifier = notifier
        self._escalations = escalations
        self._outputs = outputs
        self._clock = clock
        self._retention = retention
        self._reports = reports
        self._started = clock()
        topics = settings.topics
        outbox_topics = {OutboxTopic.lifecycle: topics.lifecycle, OutboxTopic.dispatched: topics.dispatched}
        self._relay = OutboxRelay(commands, outputs, outbox_topics, clock, _settle_outbox)
        self._recovery = Recovery(self._relay, intake, outputs, clock, recompute_deadlines)

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
        await until_done(Task.deadlines, lambda _: self._recovery.recount_deadlines(), None)
        for consumer in consumers:
            await app.add_runtime_dependency(consumer)
        if self._retention is not None:
            app.add_future(every(Task.retention, RETENTION_PURGE_SECONDS, self.purge, when=app.is_leader))
        if self._notifier is not None:
            app.add_future(every(Task.notifications, NOTIFY_SECONDS, self.notify, when=app.is_leader))
        if self._reports is not None:
            app.add_future(every(Task.reports, REPORT_CHECK_SECONDS, self.keep_reports, when=app.is_leader))
        interval = self._settings.escalation_check_seconds
        await every(Task.escalations, interval, self.escalate, when=app.is_leader)

    async def publish_outbox(self) -> None:
        await self._relay.publish()

    async def republish(self) -> None:
        await self._recovery.republish()

    async def escalate(self) -> None:
        """Leader only: fire and publish escalations, counted by level, unit and kind."""
        topic = self._settings.topics.escalations
        for message in await publish_escalations(self._escalations, self._outputs, topic, self._clock):
            metrics.record_escalation(message.level, message.unit, message.kind)

    async def notify(self) -> None:
        """Leader only: plan notifications for what escalated, send those due, count them by
        channel and outcome."""
        if self._notifier is not None:
            for sent in await self._notifier.run(self._clock):
                metrics.record_notification(sent.channel, sent.outcome)

    async def keep_reports(self) -> None:
        """Leader only: make and keep last month's report (China time) if it is not kept yet."""
        now = self._clock()
        if self._reports is not None and (now - self._started).total_seconds() >= REPORT_SETTLE_SECONDS:
            written = await asyncio.to_thread(self._reports.keep_last_month, now)
            if written:
                log.info("monthly_report_kept", files=[path.name for path in written])

    async def purge(self) -> None:
        """Leader only: delete dead letters' originals past their retention."""
        if self._retention is not None:
            deleted = await asyncio.to_thread(self._retention.purge, self._clock())
            if deleted:
                log.info("dead_letter_originals_purged", count=deleted)
