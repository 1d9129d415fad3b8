"""The outbox: announcements written in a command's transaction, published after it commits."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from workorder_pipeline.schemas.commands import OutboxTopic
from workorder_pipeline.storage.bulk import chunks
from workorder_pipeline.storage.tables import outbox

#: (outbox topic, key, payload) of one announcement.
Announcement = tuple[str, str, str]


def put(
    conn: Connection, topic: OutboxTopic, key: str, payload: str, now: datetime, position: str | None
) -> None:
    """Store an announcement; with the ``position`` of its command (exactly once) it is
    stored as published: it goes out in the command's Kafka transaction."""
    row = {"topic": topic.value, "key": key, "payload": payload, "created_at": now}
    if position is not None:
        row |= {"position": position, "published_at": now}
    conn.execute(outbox.insert(), [row])


def stored_at(conn: Connection, positions: Sequence[str]) -> dict[str, list[Announcement]]:
    """Announcements stored from these command positions, in order."""
    found: dict[str, list[Announcement]] = {}
    for chunk in chunks(sorted(set(positions))):
        rows = conn.execute(
            sa.select(outbox.c.position, outbox.c.topic, outbox.c.key, outbox.c.payload)
            .where(outbox.c.position.in_(chunk))
            .order_by(outbox.c.id)
        )
        for row in rows:
            found.setdefault(row.position, []).append((row.topic, row.key, row.payload))
    return found


class Outbox:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def unpublished_outbox(self, limit: int = 1000) -> list[dict[str, Any]]:
        """Outbox messages not yet published, oldest first (the order they were written in)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(outbox).where(outbox.c.published_at.is_(None)).order_by(outbox.c.id).limit(limit)
            ).mappings()
            return [dict(row) for row in rows]

    def mark_outbox_published(self, ids: Sequence[int], now: datetime) -> None:
        if ids:
            with self._engine.begin() as conn:
                conn.execute(sa.update(outbox).where(outbox.c.id.in_(list(ids))).values(published_at=now))
