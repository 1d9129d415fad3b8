"""The original bytes of masked dead letters (storage of ``dead_letter_original``)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from workorder_pipeline.schemas.deadletter import DeadLetter, KeptOriginal, RejectionReason
from workorder_pipeline.storage.tables import dead_letter_log, dead_letter_original


def keep(conn: Connection, originals: Sequence[KeptOriginal]) -> None:
    """Store ``originals`` in the caller's transaction; one kept already (a re-delivered
    message, a retried batch) stays as it was."""
    if not originals:
        return
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    rows = [
        {
            "id": o.id,
            "topic": o.topic,
            "partition": o.partition,
            "offset": o.offset,
            "key": o.key,
            "value": o.value,
            "reason": o.reason.value,
            "dead_lettered_at": o.dead_lettered_at,
        }
        for o in originals
    ]
    conn.execute(insert(dead_letter_original).on_conflict_do_nothing(index_elements=["id"]), rows)


def log(conn: Connection, letters: Sequence[DeadLetter]) -> None:
    """Count ``letters`` in the dead-letter log (the monthly report reads it), in the caller's
    transaction: one row per message position, so a re-delivered message counts once."""
    if not letters:
        return
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    rows = {
        letter_id(letter): {
            "id": letter_id(letter),
            "topic": letter.source.topic,
            "reason": letter.reason.value,
            "at": letter.dead_lettered_at,
        }
        for letter in letters
    }
    conn.execute(insert(dead_letter_log).on_conflict_do_nothing(index_elements=["id"]), list(rows.values()))


def letter_id(letter: DeadLetter) -> str:
    """The dead letter's message position (with its timestamp: a re-created topic's offsets
    start again), hashed to a fixed length."""
    source = letter.source
    position = f"{source.topic}\x00{source.partition}\x00{source.offset}\x00{source.timestamp_ms}"
    return "dl-" + hashlib.sha256(position.encode()).hexdigest()[:32]


class DeadLetterOriginals:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def keep(self, originals: Sequence[KeptOriginal]) -> None:
        """Store ``originals`` in a transaction of their own."""
        if originals:
            with self._engine.begin() as conn:
                keep(conn, originals)

    def get(self, original_id: str) -> KeptOriginal | None:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(dead_letter_original).where(dead_letter_original.c.id == original_id)
            ).one_or_none()
        if row is None:
            return None
        return KeptOriginal(
            id=row.id,
            topic=row.topic,
            partition=row.partition,
            offset=row.offset,
            key=row.key,
            value=row.value,
            reason=RejectionReason(row.reason),
            dead_lettered_at=row.dead_lettered_at,
        )

    def purge(self, before: datetime) -> int:
        """Delete the originals dead-lettered before ``before``; how many were deleted."""
        with self._engine.begin() as conn:
            deleted = conn.execute(
                sa.delete(dead_letter_original).where(dead_letter_original.c.dead_lettered_at < before)
            )
            return int(deleted.rowcount or 0)
