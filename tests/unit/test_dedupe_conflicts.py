"""A lost race for a dedupe key is a conflict: the batch is retried whole, never split or
dead-lettered; every other unique violation keeps its handling (storage/dedupe_slots.py,
services/failures.py). The SQLite errors are real ones, raised by a real database."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence

import pytest
import sqlalchemy.exc
from structlog.testing import capture_logs

from workorder_pipeline.services.failures import WaitingFor, error_name, transient, transient_detail
from workorder_pipeline.storage.dedupe_slots import DedupeSlotTaken, slot_taken
from workorder_pipeline.streams.resilience import Task, WaitingOn, classify
from workorder_pipeline.streams.retry import settle

PLATE = "苏FD0001"


def violation(statement: str) -> sqlalchemy.exc.IntegrityError:
    """The IntegrityError SQLAlchemy raises for ``statement`` on a work_order table with the
    slot's unique index, holding one order with the key ``PLATE``."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE work_order (id TEXT PRIMARY KEY, dedupe_key TEXT, dedupe_slot TEXT)")
    db.execute("CREATE UNIQUE INDEX uq_work_order_dedupe_slot ON work_order (dedupe_slot)")
    db.execute("CREATE UNIQUE INDEX uq_other ON work_order (dedupe_key)")
    db.execute("INSERT INTO work_order VALUES ('WO-1', ?, ?)", (PLATE, PLATE))
    try:
        db.execute(statement, {"plate": PLATE})
    except sqlite3.IntegrityError as exc:
        return sqlalchemy.exc.IntegrityError(statement, {"plate": PLATE}, exc)
    finally:
        db.close()
    raise AssertionError("the statement was not refused")


SLOT = "INSERT INTO work_order VALUES ('WO-2', 'other', :plate)"
SAME_ID = "INSERT INTO work_order VALUES ('WO-1', 'other', NULL)"
OTHER_INDEX = "INSERT INTO work_order VALUES ('WO-2', :plate, NULL)"


def test_only_a_violation_of_the_slot_index_is_a_lost_dedupe_race() -> None:
    assert slot_taken(violation(SLOT))
    assert not slot_taken(violation(SAME_ID))
    assert not slot_taken(violation(OTHER_INDEX))


@pytest.mark.parametrize("statement", [SAME_ID, OTHER_INDEX, SLOT])
def test_a_unique_violation_as_the_driver_raises_it_stays_permanent(statement: str) -> None:
    """Only the repository, having run the batch again, turns a lost race into a conflict."""
    assert transient(violation(statement)) is None
    assert classify(violation(statement)) is WaitingOn.unexpected


def test_a_lost_dedupe_race_is_a_conflict_to_retry() -> None:
    try:
        raise DedupeSlotTaken() from violation(SLOT)
    except DedupeSlotTaken as exc:
        conflict = exc
    assert transient(conflict) is WaitingFor.conflict
    assert classify(conflict) is WaitingOn.conflict
    said = f"{error_name(conflict)} {transient_detail(conflict)} {conflict}"
    assert PLATE not in said and "DedupeSlotTaken" in said  # the key is personal data


def test_a_batch_that_lost_a_dedupe_race_is_retried_whole_and_nothing_is_set_aside() -> None:
    attempts: list[list[int]] = []
    given_up: list[int] = []

    async def store(batch: Sequence[int]) -> int:
        attempts.append(list(batch))
        if len(attempts) < 3:
            raise DedupeSlotTaken() from violation(SLOT)
        return sum(batch)

    async def give_up(item: int, _error: BaseException) -> int:
        given_up.append(item)
        return 0

    with capture_logs() as logs:
        outcomes = asyncio.run(settle(Task.intake, store, [1, 2, 3, 4], give_up))

    assert outcomes == [10] and given_up == []
    assert attempts == [[1, 2, 3, 4]] * 3  # never split
    assert [(e["event"], e.get("on")) for e in logs] == [
        ("worker_waiting", "conflict"),
        ("worker_resumed", "conflict"),
    ]
    assert all(PLATE not in str(e) for e in logs)
