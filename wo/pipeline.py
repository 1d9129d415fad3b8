"""``wo run``: everything the pipeline needs, started in order and stopped in reverse.

Embedded mode (no ``WO_KAFKA_BOOTSTRAP``) starts the Tansu broker as a child process
bound to 127.0.0.1; the child dies with us even on SIGKILL (see embedded_broker).
"""

from __future__ import annotations

import asyncio
import gc
import os
from datetime import timedelta

import faust
import structlog
import uvicorn
from prometheus_client import start_http_server

from workorder_pipeline.api.app import create_app
from workorder_pipeline.api.auth import load_tokens
from workorder_pipeline.api.console.access import ApiAccess
from workorder_pipeline.api.console.session import ConsoleParts
from workorder_pipeline.config.settings import ProcessingGuarantee, Settings
from workorder_pipeline.processors.lifecycle import Clocks
from workorder_pipeline.schemas.policy import Policy, ReferenceData
from workorder_pipeline.schemas.senders import SenderKeys
from workorder_pipeline.services.clock import utc_now
from workorder_pipeline.services.commands import CommandHandler
from workorder_pipeline.services.dead_letters import Retention
from workorder_pipeline.services.deadlines import recompute_provisional_deadlines
from workorder_pipeline.services.escalations import Escalations
from workorder_pipeline.services.figure_snapshots import FigureSnapshots
from workorder_pipeline.services.intake import Intake, intake_limits
from workorder_pipeline.services.notifications import Notifier
from workorder_pipeline.services.officers import Officers
from workorder_pipeline.services.platform_silence import silence_judge
from workorder_pipeline.services.policy_files import ReferenceFiles
from workorder_pipeline.services.policy_set import PolicySet, load_policy_set
from workorder_pipeline.services.report_archive import MonthlyReports
from workorder_pipeline.services.sender_keys import (
    SigningKey,
    new_signing_key,
    read_signing_key,
    write_signing_key,
)
from workorder_pipeline.storage.api_store import ApiStore
from workorder_pipeline.storage.database import create_engine, migrate, wait_for_database
from workorder_pipeline.storage.dead_letters import DeadLetterOriginals
from workorder_pipeline.storage.figures_read import FigureFacts
from workorder_pipeline.storage.notifications import NotificationStore
from workorder_pipeline.storage.officer_store import OfficerStore
from workorder_pipeline.storage.order_gauges import OrderGauges
from workorder_pipeline.storage.platforms_seen import PlatformsSeen
from workorder_pipeline.storage.report_store import ReportStore
from workorder_pipeline.storage.repository import WorkOrderRepository
from workorder_pipeline.streams import figure_gauges, metrics, platform_watch, supervision
from workorder_pipeline.streams.app import Worker, build_app
from workorder_pipeline.streams.channels import build_channels
from workorder_pipeline.streams.kafka.admin import TopicSetupTimedOut, is_retriable
from workorder_pipeline.streams.kafka.producers import KafkaCommandPublisher
from workorder_pipeline.streams.kafka.security import kafka_python_options
from workorder_pipeline.streams.outputs import check_transactions
from workorder_pipeline.wo import ports
from workorder_pipeline.wo.broker_keeper import (
    EmbeddedBrokerChild,
    create_topics,
    partition_counts,
    wait_for_broker,
)
from workorder_pipeline.wo.embedded_broker import EmbeddedBroker

log = structlog.get_logger(__name__)


#: Allocations between two young-generation collections (Python's default: 700).
GC_YOUNG_THRESHOLD = 20_000


def _tune_garbage_collector() -> None:
    """An intake batch of 500 made ~25 young-generation collections at Python's default
    threshold, and the older generations' collections scanned everything alive (libraries,
    policy): 15% of the intake's CPU (193 -> 163 µs per message, Intake.handle alone, 20,000
    alarms). What start-up loaded is frozen: never scanned again."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


def run_pipeline(settings: Settings, *, child: bool = False) -> int:
    """The whole pipeline in this process; ``child``: one of ``wo run --processes N``'s
    workers (wo/processes.py), whose parent started the broker and the API, created the
    topics and migrated the database."""
    # A bad policy stops us before anything starts, as `wo rules check` would have said.
    loaded = load_policy_set(settings.policy_dir)
    reference = ReferenceFiles(settings.policy_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ports.check_ports(settings, api=not child)  # a taken port stops us before anything starts
    broker: EmbeddedBroker | None = None
    try:
        broker = start_broker(settings)
        expected = set_up_topics(settings)
        if not child:
            prepare_database(settings)
        repository = WorkOrderRepository(create_engine(settings.database_url))
        api_key = api_signing_key(settings)
        worker_parts = _build_worker(settings, loaded, reference, repository, api_key, expected, broker)
        units = loaded.policy.units.ids()
        metrics.initialise(units)
        supervision.register(
            worker_parts.app,
            OrderGauges(repository.engine),
            units,
            [*settings.topics.inbound(), settings.topics.commands],
            positions=[worker_parts.lag.positions],
        )
        # One snapshot of the months' figures for the gauges and the console's pages.
        figures = figure_snapshots(settings, repository, loaded)
        figure_gauges.register(figures, supervision.faust_leader(worker_parts.app))
        platform_watch.register(
            PlatformsSeen(repository.engine),
            loaded.platforms,
            silence_judge(loaded.calendar),
            supervision.faust_leader(worker_parts.app),
        )
        serve_api = api_key is not None and not child
        api = start_api(settings, repository, api_key, figures) if serve_api and api_key is not None else None
        return _serve(settings, worker_parts.app, api)
    finally:
        if broker is not None:
            broker.stop()
            log.info("embedded_broker_stopped")


def start_broker(settings: Settings) -> EmbeddedBroker | None:
    """The embedded broker, started (None with an external one, which is waited for: never
    a reason to exit)."""
    if not settings.embedded_broker:
        wait_for_broker(settings)
        return None
    broker = EmbeddedBroker(settings.embedded_broker_port, log_path=settings.data_dir / "broker.log").start()
    log.info("embedded_broker_started", bootstrap=broker.bootstrap, pid=broker.pid)
    return broker


def set_up_topics(settings: Settings) -> dict[str, int]:
    """Create the missing topics; returns each topic's partition count (checked while running).
    An external broker that stops answering meanwhile is waited for again, as at start; in
    exactly-once mode, a broker without transactions stops us here."""
    while True:
        try:
            created = create_topics(settings)
            expected = partition_counts(
                settings.bootstrap_servers, settings.topics.all(), kafka_python_options(settings)
            )
        except Exception as exc:
            # A refusal (rights, settings) is not waited out: waiting does not change it.
            if settings.embedded_broker or not (isinstance(exc, TopicSetupTimedOut) or is_retriable(exc)):
                raise
            log.warning(
                "broker_lost_during_topic_setup",
                bootstrap=settings.bootstrap_servers,
                error=type(exc).__name__,
                detail="waiting for it again, then setting up the topics again",
            )
            wait_for_broker(settings)
            continue
        break
    log.info("topics_ready", created=created, partitions=expected)
    if settings.processing_guarantee is ProcessingGuarantee.exactly_once:
        asyncio.run(check_transactions(settings))
        log.info("processing_guarantee", guarantee=settings.processing_guarantee.value)
    return expected


def prepare_database(settings: Settings) -> None:
    """Wait for the database (WO_DATABASE_STARTUP_WAIT_S), then migrate it."""
    wait_for_database(
        settings.database_url,
        settings.database_startup_wait_s,
        lambda delay, exc: log.warning(
            "database_unavailable",
            retry_in_s=delay,
            error=type(exc).__name__,
            detail=str(exc.args[0])[:300],
        ),
    )
    migrate(settings.database_url)


def _build_worker(
    settings: Settings,
    loaded: PolicySet,
    reference: ReferenceFiles,
    repository: WorkOrderRepository,
    api_key: SigningKey | None,
    expected: dict[str, int],
    broker: EmbeddedBroker | None,
) -> Worker:
    """The services on ``repository``, wired to the topics (streams/app)."""
    policy, calendar = loaded.policy, loaded.calendar

    def current_reference() -> ReferenceData:
        """The reference lists, re-read when their files changed; a bad edit is logged and ignored."""
        error = reference.reload_if_changed()
        if error is not None:
            log.error("reference_lists_rejected", problems=[str(p) for p in error.problems])
        return reference.current

    limits = intake_limits(settings)
    intake = Intake(
        loaded.compiled,
        repository,
        settings.topics.inbound(),
        reference=current_reference,
        calendar=calendar,
        max_message_bytes=limits.max_bytes,
        max_event_age=limits.max_age,
        max_event_lead=limits.max_lead,
        guarantee=settings.processing_guarantee,
    )
    commands = CommandHandler(
        repository,
        frozenset(policy.units.ids()),
        policy.lifecycle,
        trusted_senders(loaded.senders, api_key),
        settings.processing_guarantee,
        Clocks(calendar, policy.deadlines.acceptance, policy.deadlines.cutoff),
    )
    return build_app(
        settings,
        intake,
        commands,
        Escalations(repository, policy.deadlines, calendar),
        recompute_deadlines=lambda: recompute_provisional_deadlines(
            repository, calendar, policy.deadlines, utc_now()
        ),
        expected_topics=expected,
        broker_child=EmbeddedBrokerChild(broker, settings) if broker is not None else None,
        retention=Retention(
            DeadLetterOriginals(repository.engine), timedelta(days=settings.dead_letter_retention_days)
        ),
        notifier=_notifier(loaded, repository),
        reports=monthly_reports(settings, repository, policy),
    )


def trusted_senders(listed: SenderKeys, api_key: SigningKey | None) -> SenderKeys:
    """The keys the worker's command handler trusts: senders.yaml's, and the API's own key
    unless senders.yaml lists it (then the listing, retired or not, decides)."""
    if api_key is None or listed.find(api_key.key_id) is not None:
        return listed
    return listed.with_key(api_key.public(API_SENDER, ("*",)))


def _notifier(loaded: PolicySet, repository: WorkOrderRepository) -> Notifier | None:
    """Who is told of escalations (policy/notifications.yaml); None: nobody."""
    if loaded.notifications is None or loaded.notify_router is None:
        return None
    names = loaded.policy.units.names()
    channels = build_channels(os.environ, utc_now)
    store = NotificationStore(repository.engine)
    return Notifier(store, loaded.notifications, loaded.notify_router, channels, names)


def monthly_reports(settings: Settings, repository: WorkOrderRepository, policy: Policy) -> MonthlyReports:
    """The monthly reports on the database, kept in WO_REPORT_DIR (default: data_dir/reports),
    scored by the policy's weights, units shown by their names."""
    directory = settings.report_dir or settings.data_dir / "reports"
    engine = repository.engine
    return MonthlyReports(
        ReportStore(engine), FigureFacts(engine), policy.figures.score, directory, policy.units.names()
    )


def _serve(settings: Settings, app: faust.App, api: uvicorn.Server | None) -> int:
    """Serve the metrics and run the worker until it stops; returns its exit code."""
    try:
        server, _thread = start_http_server(settings.metrics_port, addr=settings.metrics_host)
    except OSError as exc:  # taken since the check
        raise ports.metrics_listener(settings).refusal(exc) from None
    log.info("metrics_serving", url=f"http://{settings.metrics_host}:{server.server_port}/metrics")
    _tune_garbage_collector()
    # Our logging set-up (wo.logs) stays in force: faust must not install its own.
    worker = faust.Worker(
        app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False, override_logging=False
    )
    # No terminal spinner: it writes control characters into the log and, at some
    # levels, turns the root logger to DEBUG (see ../shared/stack-notes.md).
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    finally:
        server.shutdown()
        if api is not None:
            api.should_exit = True
    return 0


#: The sender name of the API's own key (made in WO_DATA_DIR when no key file is given).
API_SENDER = "api (this worker)"
API_KEY_FILE = "api-signing.key"


def api_signing_key(settings: Settings) -> SigningKey | None:
    """The key the API signs its commands with; None when the API is off (no tokens file,
    without which nobody could use it). Without WO_API_SIGNING_KEY_FILE, the worker's own
    key in WO_DATA_DIR, made on first start."""
    if settings.api_tokens_file is None:
        log.info("api_disabled", reason="no WO_API_TOKENS_FILE: see README, HTTP API")
        return None
    if settings.api_signing_key_file is not None:
        return read_signing_key(settings.api_signing_key_file)
    path = settings.data_dir / API_KEY_FILE
    if not path.exists():
        write_signing_key(new_signing_key(f"api-{utc_now():%Y%m%d%H%M%S}"), path)
        log.info("api_signing_key_made", path=str(path))
    return read_signing_key(path)


def figure_snapshots(
    settings: Settings, repository: WorkOrderRepository, loaded: PolicySet
) -> FigureSnapshots:
    """One snapshot of the months' figures (the gauges and the console's pages), its first
    read started in the background."""
    figures = FigureSnapshots(
        FigureFacts(repository.engine),
        loaded.policy.figures.score,
        refresh_seconds=settings.figures_refresh_seconds,
        background=True,
    )
    figures.prepare()
    return figures


def start_api(
    settings: Settings, repository: WorkOrderRepository, key: SigningKey, figures: FigureSnapshots
) -> uvicorn.Server:
    """Serve the HTTP API in a thread; its commands are signed with ``key``."""
    assert settings.api_tokens_file is not None
    loaded = load_policy_set(settings.policy_dir)
    tokens = load_tokens(settings.api_tokens_file, loaded.policy.units.ids())
    publisher = KafkaCommandPublisher(
        settings.bootstrap_servers,
        settings.topics.commands,
        key,
        client_options=kafka_python_options(settings),
    )
    access = ApiAccess(settings.api_tokens_file, settings.policy_dir, trusted_senders(loaded.senders, key))
    officers = Officers(OfficerStore(repository.engine))
    console = ConsoleParts(officers, loaded.policy, loaded.calendar, utc_now, figures, access)
    app = create_app(
        ApiStore(repository.engine),
        tokens,
        publisher,
        wait_s=settings.api_command_wait_s,
        weights=loaded.policy.figures.score,
        console=console,
        reports=monthly_reports(settings, repository, loaded.policy),
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.api_host, port=settings.api_port, log_config=None, access_log=False)
    )
    url = ports.serve_api(server, ports.api_listener(settings))
    log.info("api_serving", url=url, docs="/docs", console="/console")
    return server
