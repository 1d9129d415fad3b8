"""One absorbing order per dedupe key, enforced by the database.

``work_order.dedupe_slot`` holds an order's dedupe key while the order is the one later
signals with that key merge into; a unique index allows one holder per key (NULLs are not
counted, on SQLite as on PostgreSQL). Intake writes a new order for a key with the slot,
after freeing it from the holder that its own triage saw (same transaction). A worker that
decided from an older view, because another one opened an order for the key meanwhile (a
rebalance, or a key spanning partitions such as an enterprise), finds the slot taken: its
insert fails on the index and its batch is done again from the start, when triage sees the
winner's order and merges into it. Closing an order frees its slot.

An order that is open without the slot (one a newer order superseded once its window
passed, or one reopened) still absorbs signals when it is the most recently seen, as
triage decides; it never makes a second order possible.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from workorder_pipeline.schemas.errors import Interrupted
from workorder_pipeline.storage.tables import DEDUPE_SLOT_INDEX, work_order


class DedupeSlotTaken(Interrupted):
    """Another transaction opened an order for a dedupe key this batch opens one for: the
    batch must be done again from its start (it will merge into the winner's order)."""

    def __init__(self) -> None:
        # Never the key itself: it holds plates and enterprise ids.
        super().__init__("another worker opened an order for a dedupe key of this batch first")


def slot_taken(exc: IntegrityError) -> bool:
    """Whether ``exc`` is a violation of the dedupe-slot index (and of nothing else)."""
    original = exc.orig
    if isinstance(original, psycopg.errors.UniqueViolation):
        return original.diag.constraint_name == DEDUPE_SLOT_INDEX
    if isinstance(original, sqlite3.IntegrityError):
        # SQLite names the columns of the index, not the index.
        return str(original) == "UNIQUE constraint failed: work_order.dedupe_slot"
    return False


_c = work_order.c

#: Free the slot of an order the batch saw holding it; an order whose slot another
#: transaction took meanwhile is left alone (the insert then fails on the index).
_FREE_SLOT = (
    sa.update(work_order)
    .where(_c.id == sa.bindparam("holder"), _c.dedupe_slot == sa.bindparam("key"))
    .values(dedupe_slot=None)
)


def free_slots(conn: Connection, holders: dict[str, str], keys: Sequence[str]) -> None:
    """Free the slots of ``keys`` from the orders seen holding them (``holders``: key ->
    order id), in id order (the order intake and commands lock rows in)."""
    seen = sorted((holders[key], key) for key in set(keys) if key in holders)
    if seen:
        conn.execute(_FREE_SLOT, [{"holder": holder, "key": key} for holder, key in seen])
