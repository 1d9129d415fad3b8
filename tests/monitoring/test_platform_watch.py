"""Platform silence from the database (streams/platform_watch.py, storage/platforms_seen.py)
on SQLite and PostgreSQL: the real intake records each platform's newest event in its batch,
the leader judges every expected platform against policy/platforms.yaml. A restart (a new
engine and collector: a new worker) forgets nothing, and silence lasts as long as it does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY as REGISTRY_
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.pipeline_support import REPO_ROOT, SAMPLES, file_lines
from workorder_pipeline.config.settings import Topics
from workorder_pipeline.processors.calendar import WorkCalendar
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.schemas.platforms import PlatformRegistry
from workorder_pipeline.services.calendar_files import package_schedules
from workorder_pipeline.services.intake import InboundMessage, Intake
from workorder_pipeline.services.platform_files import load_platforms
from workorder_pipeline.services.platform_silence import silence_judge
from workorder_pipeline.services.policy_files import load_policy, load_reference
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.platforms_seen import PlatformsSeen
from workorder_pipeline.storage.repository import WorkOrderRepository
from workorder_pipeline.streams.platform_watch import PlatformSilenceCollector
from workorder_pipeline.streams.resilience import WaitingOn

pytestmark = pytest.mark.integration

TOPICS = Topics()
FILES = {
    "vehicle-alarms.jsonl": TOPICS.vehicle_alarms,
    "suspects.jsonl": TOPICS.suspects,
    "checkin-failures.jsonl": TOPICS.checkin_failures,
    "complaints.jsonl": TOPICS.complaints,
}
#: After every sample event (Monday 2026-11-23, 10:00 China time).
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
POLICY = load_policy(REPO_ROOT / "policy")
REGISTRY = load_platforms(REPO_ROOT / "policy")
CALENDAR = WorkCalendar(package_schedules())


def messages(names: dict[str, str] = FILES) -> list[InboundMessage]:
    return [
        InboundMessage(topic, 0, offset, None, line)
        for name, topic in names.items()
        for offset, line in enumerate(file_lines(SAMPLES / name))
    ]


def intake_for(repository: WorkOrderRepository) -> Intake:
    reference = load_reference(REPO_ROOT / "policy")
    return Intake(compile_policy(POLICY), repository, TOPICS.inbound(), reference=lambda: reference)


@pytest.fixture
def database(database_url: str) -> Iterator[str]:
    migrate(database_url)
    yield database_url


def worker(database_url: str, registry: PlatformRegistry = REGISTRY, leader: bool = True) -> Any:
    """What a (re)started worker exports: a new engine, a new collector."""
    seen = PlatformsSeen(create_engine(database_url))
    return lambda now: scrape(
        PlatformSilenceCollector(seen, registry, silence_judge(CALENDAR), lambda: leader, clock=lambda: now)
    )


def scrape(collector: PlatformSilenceCollector) -> dict[str, dict[str, float]]:
    registry = CollectorRegistry()
    registry.register(collector)
    found: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            found.setdefault(sample.name, {})[sample.labels["platform"]] = sample.value
    return found


def test_every_expected_platform_is_judged_by_the_leader_only(database: str) -> None:
    repository = WorkOrderRepository(create_engine(database))
    result = intake_for(repository).handle(messages(), NOW)
    gauges = worker(database)(NOW)
    expected = {p.id for p in REGISTRY.platforms}
    assert set(gauges["wo_platform_silent"]) == expected
    stored = {p: min(at, NOW).timestamp() for p, at in result.platforms.items() if p in expected}
    assert gauges["wo_platform_last_seen_timestamp_seconds"] == pytest.approx(stored)
    # The samples' alarms are from the night before: the alarm platforms are silent.
    assert gauges["wo_platform_silent"]["js-key-vehicles"] == 1.0
    # The suspect list of the 21st and no list for the 22nd nor the 23rd: silent.
    assert gauges["wo_platform_silent"]["rectification"] == 1.0
    assert gauges["wo_platform_silence_allowed_seconds"]["js-key-vehicles"] == 15 * 60
    assert worker(database, leader=False)(NOW) == {}


def alarm(platform_id: str, occurred_at: datetime) -> bytes:
    line = json.loads(file_lines(SAMPLES / "vehicle-alarms.jsonl")[0])
    line["alarm_id"] = f"t-{platform_id[:20]}-{occurred_at.timestamp():.0f}"
    line["platform_id"] = platform_id
    line["occurred_at"] = occurred_at.isoformat()
    return json.dumps(line, ensure_ascii=False).encode()


def send(database: str, *lines: bytes, now: datetime) -> None:
    repository = WorkOrderRepository(create_engine(database))
    batch = [InboundMessage(TOPICS.vehicle_alarms, 0, i, None, line) for i, line in enumerate(lines)]
    result = intake_for(repository).handle(batch, now)
    assert not result.dead_letters, [letter.reason for letter in result.dead_letters]


def test_a_silent_platform_stays_silent_across_restarts_and_days(database: str) -> None:
    heard_at = NOW - timedelta(minutes=5)
    send(database, alarm("js-key-vehicles", heard_at), now=NOW)
    assert worker(database)(NOW)["wo_platform_silent"]["js-key-vehicles"] == 0.0
    for later in (timedelta(minutes=16), timedelta(hours=25), timedelta(days=9)):
        restarted = worker(database)  # a new worker: nothing in memory
        gauges = restarted(heard_at + later)
        assert gauges["wo_platform_silent"]["js-key-vehicles"] == 1.0, later
        assert gauges["wo_platform_last_seen_timestamp_seconds"]["js-key-vehicles"] == heard_at.timestamp()


def test_a_platform_that_never_sent_is_silent_without_a_last_event(database: str) -> None:
    registry = PlatformRegistry.model_validate(
        {
            "platforms": [
                {
                    "id": "sz-new-platform",
                    "name": "新平台",
                    "cadence": "continuous",
                    "silent_after_minutes": 15,
                }
            ]
        }
    )
    send(database, alarm("js-key-vehicles", NOW), now=NOW)
    gauges = worker(database, registry)(NOW)
    assert gauges["wo_platform_silent"] == {"sz-new-platform": 1.0}
    assert "wo_platform_last_seen_timestamp_seconds" not in gauges


def test_the_newest_event_wins_and_a_clock_running_ahead_does_not_hide_silence(database: str) -> None:
    send(database, alarm("js-key-vehicles", NOW - timedelta(minutes=3)), now=NOW)
    send(database, alarm("js-key-vehicles", NOW - timedelta(hours=2)), now=NOW)  # late, older
    seen = PlatformsSeen(create_engine(database)).last_seen()
    assert seen["js-key-vehicles"] == NOW - timedelta(minutes=3)
    ahead = NOW + timedelta(minutes=50)  # within the admitted lead
    send(database, alarm("js-key-vehicles", ahead), now=NOW + timedelta(minutes=1))
    seen = PlatformsSeen(create_engine(database)).last_seen()
    assert seen["js-key-vehicles"] == NOW + timedelta(minutes=1)  # its receipt, not its claim


def test_ids_that_are_not_plain_platform_ids_are_not_kept_and_fail_no_batch(database: str) -> None:
    repository = WorkOrderRepository(create_engine(database))
    odd = {"苏F12345": NOW, "a" * 65: NOW, "13962718304 顾晓明": NOW, "ok-platform": NOW}
    with repository.intake_batch(NOW) as batch:
        batch.record_platforms(odd)
    assert PlatformsSeen(repository.engine).last_seen() == {"ok-platform": NOW}


def retries() -> float:
    return sum(
        REGISTRY_.get_sample_value("wo_worker_retries_total", {"task": "platform_gauges", "on": on.value})
        or 0.0
        for on in WaitingOn
    )


def test_a_database_error_fails_no_scrape_and_is_counted() -> None:
    class Broken:
        def last_seen(self) -> dict[str, datetime]:
            raise OSError("database unavailable")

    before = retries()
    collector = PlatformSilenceCollector(
        Broken(), REGISTRY, silence_judge(CALENDAR), lambda: True, clock=lambda: NOW
    )
    assert scrape(collector) == {}
    assert scrape(collector) == {}
    assert retries() == before + 2
