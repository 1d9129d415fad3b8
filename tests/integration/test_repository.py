"""WorkOrderRepository and its migrations on real SQLite and PostgreSQL databases.

Orders are built by the real intake (decode, normalize, triage, route, open) from the
bundled samples and the repository's policy and reference lists, never hand-written rows.
Triage may merge a signal into an open order or record it as suppressed; every distinct
publisher id ends as exactly one of: a new order, a merge, a recorded suppression.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import multiprocessing
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from tests.integration.pipeline_support import (
    REPO_ROOT,
    SAMPLES,
    file_lines,
    json_lines,
    publisher_id,
    wait_for,
)
from workorder_pipeline.config.settings import Topics
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.schemas.signal import SignalKind, SourceKey
from workorder_pipeline.schemas.workorder import WorkOrder
from workorder_pipeline.services.intake import InboundMessage, Intake, IntakeResult
from workorder_pipeline.services.policy_files import load_policy, load_reference
from workorder_pipeline.storage.database import MIGRATIONS, create_engine, migrate
from workorder_pipeline.storage.repository import WorkOrderRepository
from workorder_pipeline.storage.tables import (
    suppressed_signal,
    work_order,
    work_order_event,
    work_order_source,
)

pytestmark = pytest.mark.integration

TOPICS = Topics()
VALID_SAMPLES = {
    "vehicle-alarms.jsonl": TOPICS.vehicle_alarms,
    "suspects.jsonl": TOPICS.suspects,
    "checkin-failures.jsonl": TOPICS.checkin_failures,
    "complaints.jsonl": TOPICS.complaints,
}
TOPIC_OF_KIND = {
    "vehicle_alarm": TOPICS.vehicle_alarms,
    "suspect": TOPICS.suspects,
    "checkin_failure": TOPICS.checkin_failures,
    "complaint": TOPICS.complaints,
}
CST = timezone(timedelta(hours=8))
#: A registration time with a +08:00 offset: it must come back as the same instant, in UTC.
T0 = datetime(2026, 11, 22, 9, 30, 15, 123456, tzinfo=CST)
T1 = T0 + timedelta(minutes=3, microseconds=7)
T2 = T0 + timedelta(hours=1)

APPLICATION_TABLES = {"work_order", "work_order_source", "work_order_event"}


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def sample_messages() -> list[InboundMessage]:
    """Every line of the valid sample files, as the broker would deliver it."""
    messages = []
    for name, topic in VALID_SAMPLES.items():
        for offset, line in enumerate(file_lines(SAMPLES / name)):
            messages.append(InboundMessage(topic, 0, offset, None, line))
    return messages


def distinct_sample_ids() -> set[tuple[str, ...]]:
    return {publisher_id(event) for name in VALID_SAMPLES for event in json_lines(SAMPLES / name)}


def alarm_message(alarm_id: str, serial: int, offset: int = 0, plate: str | None = None) -> InboundMessage:
    """The first sample alarm (a 12 % overspeed) under another publisher id and plate.

    Each ``serial`` is another vehicle, so triage neither merges nor suppresses it.
    """
    event = json.loads(file_lines(SAMPLES / "vehicle-alarms.jsonl")[0])
    event["alarm_id"] = alarm_id
    event["plate"] = plate or f"苏FQ{serial:04d}"
    return InboundMessage(TOPICS.vehicle_alarms, 0, offset, None, json.dumps(event).encode())


@pytest.fixture
def repository(engine: Engine) -> WorkOrderRepository:
    return WorkOrderRepository(engine)


def make_intake(repository: WorkOrderRepository) -> Intake:
    """The intake as ``wo run`` builds it: the repository's policy and reference lists."""
    policy_dir = REPO_ROOT / "policy"
    reference = load_reference(policy_dir)
    # T0 is a fixed clock earlier than some sample events: accept them however far ahead.
    return Intake(
        compile_policy(load_policy(policy_dir)),
        repository,
        TOPICS.inbound(),
        reference=lambda: reference,
        max_event_lead=timedelta(days=3650),
    )


@pytest.fixture
def intake(repository: WorkOrderRepository) -> Intake:
    return make_intake(repository)


def rows(engine: Engine, table: sa.Table) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(sa.select(table)).mappings()]


def handled(result: IntakeResult) -> int:
    """Distinct publisher ids the batch decided on."""
    return len(result.created) + sum(result.merged.values()) + sum(result.suppressed.values())


# --- migrations ---------------------------------------------------------------------


def test_migrations_apply_to_an_empty_database_and_are_idempotent(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        assert APPLICATION_TABLES.isdisjoint(sa.inspect(engine).get_table_names())

        migrate(database_url)
        tables = set(sa.inspect(engine).get_table_names())
        assert tables >= APPLICATION_TABLES
        with engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
        assert version == [head_revision()]

        migrate(database_url)  # a second run changes nothing and does not fail
        assert set(sa.inspect(engine).get_table_names()) == tables
        with engine.connect() as conn:
            again = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
        assert again == version

        # The migrated schema is what the repository reads and writes.
        repository = WorkOrderRepository(engine)
        assert repository.count() == 0
        assert repository.undispatched() == []
        assert make_intake(repository).handle([alarm_message("MIGRATED", 1)], T0).created
    finally:
        engine.dispose()


def _migrate_in_process(url: str, errors: Any) -> None:
    try:
        migrate(url)
    except Exception as exc:
        errors.put(f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")


@contextlib.contextmanager
def _migrating_together(url: str, workers: int) -> Iterator[list[Any]]:
    """Yields ``workers`` processes that each migrate ``url``, for the test to start and release;
    then checks that every one succeeded and the database is at the head revision."""
    context = multiprocessing.get_context("spawn")
    errors = context.Queue()
    processes = [context.Process(target=_migrate_in_process, args=(url, errors)) for _ in range(workers)]
    try:
        yield processes
        for process in processes:
            process.join(timeout=60)
        failures = []
        while not errors.empty():
            failures.append(errors.get())
        assert failures == []
        assert [p.exitcode for p in processes] == [0] * workers
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
        finally:
            engine.dispose()
        assert versions == [head_revision()]
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join(timeout=10)


@pytest.mark.postgres
def test_migrations_started_at_once_by_several_processes_all_succeed(postgres_url: str) -> None:
    """Several workers starting together on an empty database (``wo run`` migrates at start).

    To make them meet for certain, the test holds an uncommitted ``alembic_version`` of its
    own until every process waits on it, then rolls it back and lets them all go at once.
    """
    workers = 3
    gate = sa.create_engine(postgres_url)
    try:
        # Left in reverse order: the holder rolls back before the processes are awaited.
        with (
            _migrating_together(postgres_url, workers) as processes,
            gate.connect() as holder,
            gate.connect() as observer,
        ):
            holder.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            for process in processes:
                process.start()
            waiting = sa.text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )

            def all_waiting() -> bool:
                count = int(observer.execute(waiting).scalar_one())
                observer.rollback()  # pg_stat_activity is a snapshot per transaction
                return count >= workers

            wait_for(
                lambda: all_waiting() or None,
                30,
                f"{workers} migrating processes to wait on the same table",
                interval_s=0.05,
            )
            holder.rollback()
    finally:
        gate.dispose()


def test_migrations_started_at_once_on_one_sqlite_file_all_succeed(sqlite_url: str) -> None:
    """Several workers starting together on a new SQLite file: they take turns on the file's
    migration lock. The test holds that lock until all have started, then lets them go."""
    workers = 3
    database = sa.engine.make_url(sqlite_url).database
    with _migrating_together(sqlite_url, workers) as processes, open(f"{database}.migrating", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=3)  # they start (imports take a while) and wait on the lock
        assert [p.exitcode for p in processes] == [None] * workers, "a migration ran while locked"
        fcntl.flock(lock, fcntl.LOCK_UN)


# --- registering --------------------------------------------------------------------


def test_register_persists_orders_sources_and_a_registered_event(
    intake: Intake, repository: WorkOrderRepository, engine: Engine
) -> None:
    result = intake.handle(sample_messages(), T0)

    expected = distinct_sample_ids()
    assert result.dead_letters == []
    assert handled(result) == len(expected)  # each distinct event: an order, a merge or a suppression
    assert result.created and repository.count() == len(result.created)
    # The one deliberate re-send in the samples is reported, and makes nothing.
    assert result.redelivered == Counter({"vehicle_alarm": 1})
    assert sorted(o.id for o in result.to_dispatch) == sorted(o.id for o in result.created)

    sources = rows(engine, work_order_source)
    suppressed = rows(engine, suppressed_signal)
    assert len(sources) == len(result.created) + sum(result.merged.values())
    assert len(suppressed) == sum(result.suppressed.values())
    keys = [row["source_key"] for row in [*sources, *suppressed]]
    assert len(keys) == len(set(keys)) == len(expected)
    assert {s["work_order_id"] for s in sources} == {o.id for o in result.created}

    for created in result.created:
        stored = repository.get(created.id)
        assert stored is not None
        assert stored.model_dump(exclude={"occurrences", "source_ids", "last_seen_at", "first_seen_at"}) == (
            created.model_dump(exclude={"occurrences", "source_ids", "last_seen_at", "first_seen_at"})
        )
        assert stored.source_ids[: len(created.source_ids)] == created.source_ids
        history = repository.history(created.id)
        assert [(e["type"], e["actor"]) for e in history[:1]] == [("registered", "pipeline")]
        assert {e["type"] for e in history[1:]} <= {"merged"}
        decision = history[0]["detail"]
        assert decision["action"] == "create"
        assert decision["unit"] == created.unit
        assert decision["priority"] == created.priority.value
        assert decision["route_key"] == created.route_key
        assert decision["route_path"][0] == "default"
        assert decision["source_id"] == created.source_ids[0]
        assert decision["steps"] and all(step["reason"] for step in decision["steps"])
        assert datetime.fromisoformat(decision["due_at"]) == created.due_at
        assert decision["source"].startswith(f"{TOPIC_OF_KIND[created.kind.value]}/0/")


def test_stored_orders_keep_routing_and_normalization_of_notable_samples(
    intake: Intake, repository: WorkOrderRepository, engine: Engine
) -> None:
    intake.handle(sample_messages(), T0)
    order_of = {row["source_key"]: row["work_order_id"] for row in rows(engine, work_order_source)}
    payload_of = {
        row["source_key"]: row["payload"]
        for row in [*rows(engine, work_order_source), *rows(engine, suppressed_signal)]
    }

    def key_for(fragment: str) -> str:
        matches: list[str] = [key for key in payload_of if key.endswith(fragment)]
        assert len(matches) == 1, (fragment, sorted(payload_of))
        return matches[0]

    def order_for(fragment: str) -> WorkOrder:
        order = repository.get(order_of[key_for(fragment)])
        assert order is not None
        return order

    night_ban = order_for("JSKV-20261120-000873")  # coach at 02:41+08:00
    assert (night_ban.unit, night_ban.priority.value) == ("squad-1", "P1")
    assert order_for("NT12345-20261122-0094027").unit == "legal"  # enforcement_conduct about squad-1
    assert order_for("JS12395-2026112200007").unit == "water-1"
    assert order_for("NTTX-261119-00318").subject.plate == "苏F3T827"  # full-width plate
    private_truck = order_for("JSKV-20261121-000457")
    assert private_truck.subject.plate == "苏F9E552" and private_truck.subject.enterprise_id is None
    utc_alarm = order_for("JSKV-20261120-001954")  # occurred_at sent with Z
    assert utc_alarm.first_seen_at == datetime(2026, 11, 20, 14, 15, 32, tzinfo=CST)

    # The validated event is kept as evidence (normalized, extra fields included), whatever
    # triage made of it.
    assert payload_of[key_for("NTTX-261120-00562")]["plate"] == "苏F6B789"  # sent as "苏f 6b789"
    assert payload_of[key_for("RGBUS-20261121-0042")]["device_sn"] == "JT808-RG-00A3F7"


def test_same_publisher_id_in_one_batch_makes_one_order(
    intake: Intake, repository: WorkOrderRepository
) -> None:
    message = alarm_message("DUP-IN-BATCH", 1)
    result = intake.handle([message, message, alarm_message("DUP-IN-BATCH", 1, offset=1)], T0)

    assert len(result.created) == 1
    assert result.redelivered == Counter({"vehicle_alarm": 2})
    assert [o.id for o in result.to_dispatch] == [result.created[0].id]
    assert repository.count() == 1
    assert [e["type"] for e in repository.history(result.created[0].id)] == ["registered"]
    stored = repository.get(result.created[0].id)
    assert stored is not None and stored.occurrences == 1


def test_same_publisher_id_in_a_later_batch_makes_nothing_new(
    intake: Intake, repository: WorkOrderRepository, engine: Engine
) -> None:
    first = intake.handle(sample_messages(), T0)
    tables = (work_order, work_order_source, work_order_event, suppressed_signal)
    before = {table.name: rows(engine, table) for table in tables}

    # Before the first batch was published: the known orders are handed out again.
    again = intake.handle(sample_messages(), T1)
    assert again.created == [] and not again.merged and not again.suppressed
    assert sum(again.redelivered.values()) == len(sample_messages())
    assert sorted(o.id for o in again.to_dispatch) == sorted(o.id for o in first.created)
    assert {table.name: rows(engine, table) for table in tables} == before

    # Once published, a re-delivery has nothing left to do.
    intake.dispatched(first.to_dispatch, T1)
    late = intake.handle(sample_messages(), T2)
    assert late.created == [] and late.to_dispatch == []
    assert sum(late.redelivered.values()) == len(sample_messages())
    assert repository.count() == len(first.created)
    assert rows(engine, work_order_source) == before["work_order_source"]


def test_dispatched_order_includes_signals_merged_in_the_same_batch(
    intake: Intake, repository: WorkOrderRepository
) -> None:
    # Same plate and alarm type within the dedupe window: one order, two occurrences.
    first = alarm_message("MERGE-1", 7)
    second = alarm_message("MERGE-2", 7, offset=1)
    result = intake.handle([first, second], T0)
    assert len(result.created) == 1 and sum(result.merged.values()) == 1
    stored = repository.get(result.created[0].id)
    assert stored is not None and stored.occurrences == 2

    [order] = result.to_dispatch
    message = order.dispatch_message()
    assert message.occurrences == stored.occurrences
    assert message.source_ids == list(stored.source_ids)


# --- dispatching --------------------------------------------------------------------


def test_mark_dispatched_once_even_if_called_twice(intake: Intake, repository: WorkOrderRepository) -> None:
    result = intake.handle(sample_messages(), T0)
    first, second, *rest = result.created

    repository.mark_dispatched([first], T1)
    repository.mark_dispatched([first], T2)  # e.g. a re-delivered batch published again

    stored = repository.get(first.id)
    assert stored is not None and stored.status.value == "dispatched"
    history = repository.history(first.id)
    assert [e["type"] for e in history] == ["registered", "dispatched"]
    assert history[1]["at"] == T1
    assert history[1]["detail"] == {"unit": first.unit}
    # The others are untouched.
    others = [repository.get(o.id) for o in [second, *rest]]
    assert {o.status.value for o in others if o is not None} == {"registered"}

    # A mixed call only records the ones not yet dispatched.
    repository.mark_dispatched([first, second], T2)
    assert [e["type"] for e in repository.history(first.id)] == ["registered", "dispatched"]
    assert [e["type"] for e in repository.history(second.id)] == ["registered", "dispatched"]
    repository.mark_dispatched([], T2)  # nothing to do is fine


def test_undispatched_returns_registered_but_unpublished_orders(
    intake: Intake, repository: WorkOrderRepository
) -> None:
    assert repository.undispatched() == []
    result = intake.handle(sample_messages(), T0)
    created = {o.id: o for o in result.created}

    assert {o.id for o in repository.undispatched()} == set(created)
    assert len(repository.undispatched(limit=5)) == 5

    published = result.created[: len(created) // 2]
    intake.dispatched(published, T1)
    remaining = repository.undispatched()
    assert {o.id for o in remaining} == set(created) - {o.id for o in published}
    for order in remaining:  # whole orders, as registered
        assert order.status.value == "registered"
        assert order.unit == created[order.id].unit and order.due_at == created[order.id].due_at

    intake.dispatched(remaining, T2)
    assert repository.undispatched() == []
    assert intake.undispatched() == []


# --- times ----------------------------------------------------------------------------


def test_times_come_back_timezone_aware_utc_and_equal(
    intake: Intake, repository: WorkOrderRepository, engine: Engine
) -> None:
    result = intake.handle(sample_messages(), T0)
    repository.mark_dispatched(result.created[:1], T1)

    def check(value: datetime, expected: datetime) -> None:
        assert value.tzinfo is not None and value.utcoffset() == timedelta(0), value
        assert value == expected

    for created in result.created:
        stored = repository.get(created.id)
        assert stored is not None
        check(stored.created_at, T0)
        check(stored.due_at, created.due_at)
        check(stored.first_seen_at, min(stored.first_seen_at, created.first_seen_at))
        check(stored.last_seen_at, max(stored.last_seen_at, created.last_seen_at))
        if created.occurrences == stored.occurrences:
            check(stored.first_seen_at, created.first_seen_at)
            check(stored.last_seen_at, created.last_seen_at)
        if created.upstream_due_at is not None:
            assert stored.upstream_due_at is not None
            check(stored.upstream_due_at, created.upstream_due_at)
        for event in repository.history(created.id):
            check(event["at"], T1 if event["type"] == "dispatched" else T0)

    row = next(r for r in rows(engine, work_order) if r["id"] == result.created[0].id)
    check(row["created_at"], T0)
    check(row["dispatched_at"], T1)
    check(row["updated_at"], T1)
    for source in rows(engine, work_order_source):
        check(source["received_at"], T0)


def test_naive_datetimes_are_refused(intake: Intake, repository: WorkOrderRepository) -> None:
    result = intake.handle([alarm_message("NAIVE", 1)], T0)
    naive = datetime(2026, 11, 22, 9, 30)
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        repository.mark_dispatched(result.created, naive)
    assert [e["type"] for e in repository.history(result.created[0].id)] == ["registered"]


# --- append-only audit trail ----------------------------------------------------------


def test_audit_trail_refuses_update_and_delete(
    intake: Intake, repository: WorkOrderRepository, engine: Engine
) -> None:
    result = intake.handle([alarm_message("AUDIT-1", 1)], T0)
    repository.mark_dispatched(result.created, T1)
    before = rows(engine, work_order_event)
    assert len(before) == 2

    statements: list[Any] = [
        sa.update(work_order_event).values(type="tampered"),
        sa.update(work_order_event).where(work_order_event.c.type == "dispatched").values(actor="someone"),
        sa.delete(work_order_event),
        sa.delete(work_order_event).where(work_order_event.c.type == "registered"),
        sa.text("DELETE FROM work_order_event"),
        sa.text("UPDATE work_order_event SET detail = detail"),
    ]
    for statement in statements:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(statement)

    assert rows(engine, work_order_event) == before
    # Appending is still allowed.
    repository.mark_dispatched(intake.handle([alarm_message("AUDIT-2", 2)], T1).created, T2)
    assert len(rows(engine, work_order_event)) == 4


# --- concurrency ----------------------------------------------------------------------


def _race(database_url: str, batches: list[list[InboundMessage]], workers: int = 2) -> list[IntakeResult]:
    """Each worker (own engine, own thread) handles the same batch at the same moment."""
    engines = [create_engine(database_url) for _ in range(workers)]
    intakes = [make_intake(WorkOrderRepository(e)) for e in engines]
    results: list[IntakeResult] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(intake: Intake, batch: list[InboundMessage], barrier: threading.Barrier) -> None:
        try:
            barrier.wait(timeout=10)
            result = intake.handle(batch, T0)
        except BaseException as exc:
            with lock:
                errors.append(exc)
            return
        with lock:
            results.append(result)

    try:
        for batch in batches:
            barrier = threading.Barrier(workers)
            threads = [threading.Thread(target=work, args=(i, batch, barrier)) for i in intakes]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=60)
                assert not thread.is_alive(), "a racing registration hung"
    finally:
        for engine in engines:
            engine.dispose()
    assert errors == [], errors
    return results


def test_two_repositories_racing_on_one_publisher_id_make_one_order(
    database_url: str, engine: Engine, repository: WorkOrderRepository
) -> None:
    rounds = 12
    results = _race(database_url, [[alarm_message(f"RACE-{n}", n)] for n in range(rounds)])

    assert len(results) == 2 * rounds
    assert repository.count() == rounds
    created = Counter(order.id for result in results for order in result.created)
    assert len(created) == rounds and set(created.values()) == {1}, created
    assert sum(sum(r.redelivered.values()) for r in results) == rounds
    assert len(rows(engine, work_order_source)) == rounds
    events = Counter((e["work_order_id"], e["type"]) for e in rows(engine, work_order_event))
    assert set(events.values()) == {1} and len(events) == rounds


def test_two_repositories_racing_on_the_same_batch_decide_each_signal_once(
    database_url: str, engine: Engine, repository: WorkOrderRepository
) -> None:
    batch = sample_messages()
    results = _race(database_url, [batch, batch])

    expected = len(distinct_sample_ids())
    assert sum(handled(r) for r in results) == expected
    assert repository.count() == sum(len(r.created) for r in results)
    assert len(rows(engine, work_order_source)) + len(rows(engine, suppressed_signal)) == expected
    registered = [e for e in rows(engine, work_order_event) if e["type"] == "registered"]
    assert len(registered) == repository.count()


def test_links_of_orders_stored_before_0007_become_their_related_ids_and_back(database_url: str) -> None:
    from alembic import command

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0006")
            at = "2026-03-02 08:00:00"
            for order_id in ("WO-A", "WO-B", "WO-C"):
                conn.execute(
                    sa.text(
                        "INSERT INTO work_order (id, kind, status, unit, priority, route_key, created_at,"
                        " updated_at, due_at, summary, occurrences, first_seen_at, last_seen_at)"
                        " VALUES (:id, 'vehicle_alarm', 'dispatched', 'squad-1', 'P3', 'default', :at, :at,"
                        " :at, 'summary', 1, :at, :at)"
                    ),
                    {"id": order_id, "at": at},
                )
            conn.execute(
                sa.text(
                    "INSERT INTO work_order_link (work_order_id, related_id, created_at) VALUES"
                    " ('WO-C', 'WO-B', :at), ('WO-C', 'WO-A', :at), ('WO-B', 'WO-A', :at)"
                ),
                {"at": at},
            )
            conn.commit()
            command.upgrade(config, "0007")
            related = {
                row.id: row.related_ids
                for row in conn.execute(sa.text("SELECT id, related_ids FROM work_order"))
            }
            assert related == {"WO-A": "", "WO-B": "WO-A", "WO-C": "WO-A,WO-B"}
            assert "work_order_link" not in sa.inspect(conn).get_table_names()

            command.downgrade(config, "0006")
            links = conn.execute(
                sa.text("SELECT work_order_id, related_id FROM work_order_link ORDER BY 1, 2")
            ).all()
            assert [tuple(link) for link in links] == [("WO-B", "WO-A"), ("WO-C", "WO-A"), ("WO-C", "WO-B")]
    finally:
        engine.dispose()


def test_recorded_publisher_ids_name_their_order_or_none_when_suppressed(
    intake: Intake, repository: WorkOrderRepository, engine: Engine
) -> None:
    intake.handle(sample_messages(), T0)
    sources = {
        SourceKey.parse(row["source_key"]): row["work_order_id"] for row in rows(engine, work_order_source)
    }
    suppressed = {SourceKey.parse(row["source_key"]): None for row in rows(engine, suppressed_signal)}
    assert sources and suppressed
    asked = [*sources, *suppressed, SourceKey(SignalKind.vehicle_alarm, "never-sent/1")]

    with repository.read_only(T1) as batch:
        known = batch.known_sources(asked)

    assert known == {**sources, **suppressed}


def test_earlier_violations_are_read_from_orders_and_suppressed_signals(
    intake: Intake, repository: WorkOrderRepository, engine: Engine
) -> None:
    intake.handle(sample_messages(), T0)
    with engine.begin() as conn:  # one more, suppressed, on a key an order also has
        order = conn.execute(
            sa.select(work_order.c.violation_key).where(work_order.c.violation_key.is_not(None))
        ).first()
        assert order is not None, "the samples make at least one order with a violation key"
        conn.execute(
            suppressed_signal.insert(),
            {
                "source_key": "vehicle_alarm:test/violation-1",
                "kind": "vehicle_alarm",
                "reason": "threshold",
                "rule_key": "test",
                "detail": "test",
                "unit": "squad-1",
                "route_key": "root",
                "occurred_at": T1,
                "received_at": T2,
                "violation_key": order.violation_key,
                "payload": {},
            },
        )
    expected: dict[str, list[datetime]] = {}
    for table, at in ((work_order, "created_at"), (suppressed_signal, "received_at")):
        for row in rows(engine, table):
            if row["violation_key"] is not None:
                expected.setdefault(row["violation_key"], []).append(row[at])
    keys = sorted(expected)

    with repository.read_only(T2) as batch:
        found = batch.violations([*keys, "never"], T0 - timedelta(days=1))
        later = batch.violations(keys, T2)

    assert {key: sorted(times) for key, times in found.items()} == {
        key: sorted(times) for key, times in expected.items()
    }
    assert len(found[order.violation_key]) >= 2
    assert later == {order.violation_key: [T2]}
