"""A message that fails permanently is isolated; a transient failure is waited out.

The worker's loops go through ``streams.retry.settle``: here it drives the real intake
service on a real database (SQLite and PostgreSQL), with the database itself refusing one
message (a trigger: something only the database rejects, after every check of ours
passed) or being locked by another connection for a while.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY
from sqlalchemy.engine import Engine

from tests.integration.pipeline_support import REPO_ROOT, SAMPLES, file_lines
from workorder_pipeline.config.settings import Topics
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.schemas.deadletter import RejectionReason
from workorder_pipeline.services.failures import WaitingFor, transient
from workorder_pipeline.services.intake import InboundMessage, Intake, IntakeResult, combined
from workorder_pipeline.services.policy_files import load_policy, load_reference
from workorder_pipeline.storage.database import create_engine, migrate
from workorder_pipeline.storage.repository import WorkOrderRepository
from workorder_pipeline.streams.resilience import Task
from workorder_pipeline.streams.retry import settle

pytestmark = pytest.mark.integration

TOPICS = Topics()
NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
POISON = "POISON"


def make_intake(engine: Engine) -> Intake:
    reference = load_reference(REPO_ROOT / "policy")
    return Intake(
        compile_policy(load_policy(REPO_ROOT / "policy")),
        WorkOrderRepository(engine),
        TOPICS.inbound(),
        reference=lambda: reference,
        max_event_lead=timedelta(days=3650),
        max_event_age=timedelta(days=36500),
    )


def alarms(count: int, poisoned: Sequence[int] = ()) -> list[InboundMessage]:
    """``count`` alarms of distinct vehicles (each makes an order); those at ``poisoned``
    carry an alarm id the database refuses."""
    template = json.loads(file_lines(SAMPLES / "vehicle-alarms.jsonl")[0])
    messages = []
    for n in range(count):
        alarm_id = f"ISO-{POISON if n in poisoned else 'OK'}-{n:03d}"
        event = {**template, "alarm_id": alarm_id, "plate": f"苏FR{n:04d}"}
        messages.append(InboundMessage(TOPICS.vehicle_alarms, 0, n, b"k", json.dumps(event).encode()))
    return messages


def refuse_poison_in_the_database(engine: Engine) -> None:
    """A rule only the database knows: no source key containing POISON."""
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(
                sa.text(
                    "CREATE TRIGGER no_poison BEFORE INSERT ON work_order_source "
                    f"WHEN NEW.source_key LIKE '%{POISON}%' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )
        else:
            conn.execute(
                sa.text(
                    "ALTER TABLE work_order_source ADD CONSTRAINT no_poison "
                    f"CHECK (source_key NOT LIKE '%{POISON}%')"
                )
            )


def settle_on(intake: Intake, messages: list[InboundMessage]) -> IntakeResult:
    """What the intake consumer does with a batch, without the broker."""

    async def process(part: Sequence[InboundMessage]) -> IntakeResult:
        return await asyncio.to_thread(intake.handle, part, NOW)

    async def set_aside(message: InboundMessage, error: BaseException) -> IntakeResult:
        return intake.unprocessable(message, type(error).__name__, NOW)

    return combined(asyncio.run(settle(Task.intake, process, messages, set_aside)))


def stored_alarm_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        keys = conn.execute(sa.text("SELECT source_key FROM work_order_source ORDER BY source_key"))
        return [key.rsplit("/", 1)[1] for (key,) in keys]


@pytest.mark.parametrize(
    "poisoned", [(0,), (17,), (39,), (5, 6, 30)], ids=["first", "middle", "last", "three"]
)
def test_a_message_the_database_refuses_is_dead_lettered_and_its_neighbours_become_orders(
    engine: Engine, poisoned: tuple[int, ...]
) -> None:
    refuse_poison_in_the_database(engine)
    messages = alarms(40, poisoned)

    result = settle_on(make_intake(engine), messages)

    assert len(result.created) == 40 - len(poisoned)
    assert stored_alarm_ids(engine) == [f"ISO-OK-{n:03d}" for n in range(40) if n not in poisoned]
    assert [letter.source.offset for letter in result.dead_letters] == list(poisoned)
    for letter in result.dead_letters:
        assert letter.reason is RejectionReason.unprocessable
        assert "IntegrityError" in letter.detail
        assert POISON not in letter.detail  # the error's class, never its message
    assert result.rejected == {RejectionReason.unprocessable: len(poisoned)}


def test_the_whole_batch_goes_through_in_one_transaction_when_nothing_fails(engine: Engine) -> None:
    refuse_poison_in_the_database(engine)
    calls: list[int] = []
    intake = make_intake(engine)

    async def process(part: Sequence[InboundMessage]) -> IntakeResult:
        calls.append(len(part))
        return await asyncio.to_thread(intake.handle, part, NOW)

    async def set_aside(message: InboundMessage, error: BaseException) -> IntakeResult:
        raise AssertionError("nothing should be set aside")

    asyncio.run(settle(Task.intake, process, alarms(40), set_aside))
    assert calls == [40]


def waiting_gauge() -> float | None:
    return REGISTRY.get_sample_value("wo_worker_waiting", {"on": "database"})


def test_a_locked_database_is_waited_for_and_the_batch_is_kept(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/wo.db"
    migrate(url)
    engine = sa.create_engine(url, connect_args={"timeout": 0.05})
    blocker = sqlite3.connect(f"{tmp_path}/wo.db", isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")
    waiting: list[float] = []
    # The gauge counts the process's waiting tasks: measure from what it read before.
    before = waiting_gauge() or 0

    def release_later() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if (waiting_gauge() or 0) == before + 1:  # the worker says what it waits for
                waiting.append(1)
                break
            time.sleep(0.02)
        time.sleep(0.3)
        blocker.execute("COMMIT")

    releaser = threading.Thread(target=release_later)
    releaser.start()
    try:
        result = settle_on(make_intake(engine), alarms(5))
    finally:
        releaser.join()
        blocker.close()
        engine.dispose()
    assert waiting == [1]
    assert len(result.created) == 5
    assert not result.dead_letters
    assert (waiting_gauge() or 0) == before


def test_failures_are_classified_transient_or_permanent(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/wo.db"
    engine = create_engine(url)
    try:
        with pytest.raises(sa.exc.OperationalError) as syntax, engine.connect() as conn:
            conn.execute(sa.text("SELEC 1"))
        assert transient(syntax.value) is None  # a mistake: waiting would not fix it
    finally:
        engine.dispose()
    refused = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:9/none?connect_timeout=1")
    with pytest.raises(sa.exc.OperationalError) as unreachable:
        refused.connect()
    assert transient(unreachable.value) is WaitingFor.database
    assert transient(sqlite3.OperationalError("database is locked")) is WaitingFor.database
    assert transient(ConnectionRefusedError()) is WaitingFor.network
    assert transient(ValueError("x")) is None
    try:
        raise RuntimeError("wrapped") from TimeoutError()
    except RuntimeError as wrapped:
        assert transient(wrapped) is WaitingFor.network
