"""The newest event time of each publishing platform (``platform_seen``).

Written in the intake batch's own transaction, as its last statement (IntakeBatch.flush),
so it is exactly as durable as the signals. Every batch of every worker would otherwise
update the same few rows and queue behind each other's locks until commit: a row is only
written when it is new or its time moves on by at least ``MIN_ADVANCE`` (read first,
without a lock). The
stored time may thus be up to a minute behind the newest signal; silence is judged in
minutes to days.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from workorder_pipeline.schemas.platforms import is_platform_id
from workorder_pipeline.storage.tables import platform_seen

MIN_ADVANCE = timedelta(minutes=1)


def record(conn: Connection, platforms: Mapping[str, datetime], now: datetime) -> None:
    """Remember each platform's newest event time (clamped to ``now``: a publisher's clock
    running ahead must not hide its silence), in the caller's transaction. Ids that are not
    plain platform ids are not kept (they could be anything a publisher sends)."""
    wanted = {p: min(at, now) for p, at in platforms.items() if is_platform_id(p)}
    if not wanted:
        return
    c = platform_seen.c
    stored = dict(conn.execute(sa.select(c.platform, c.last_event_at).where(c.platform.in_(wanted))).all())
    rows = [
        {"platform": p, "last_event_at": at, "updated_at": now}
        for p, at in sorted(wanted.items())  # one order for every worker: no deadlock
        if p not in stored or at - stored[p] >= MIN_ADVANCE
    ]
    if not rows:
        return
    insert = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(platform_seen)
    newer = insert.excluded.last_event_at > c.last_event_at  # two workers may race: newest wins
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=["platform"],
            set_={"last_event_at": insert.excluded.last_event_at, "updated_at": insert.excluded.updated_at},
            where=newer,
        ),
        rows,
    )


class PlatformsSeen:
    """Reads for the leader's platform-silence gauges."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def last_seen(self) -> dict[str, datetime]:
        """Platform -> newest event time, for every platform ever heard of."""
        c = platform_seen.c
        with self._engine.connect() as conn:
            return dict(conn.execute(sa.select(c.platform, c.last_event_at)).all())
