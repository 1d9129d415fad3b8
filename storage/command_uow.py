"""The lifecycle commands' unit of work: a batch of commands' reads and writes, in one
transaction, with each command's effect, its record (processed_command) and its
announcements (the outbox).

The service opens it (``with repository.command_batch(now) as batch:``); it commits when
the block ends normally. A command_id another worker recorded meanwhile raises
storage.transaction.LostRace: the service does the whole batch again (it then sees it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from workorder_pipeline.schemas.commands import EscalationLevel, LifecycleEventName, OutboxTopic
from workorder_pipeline.schemas.deadletter import DeadLetter, KeptOriginal
from workorder_pipeline.schemas.workorder import WorkOrder, WorkOrderStatus
from workorder_pipeline.storage import audit_trail, dead_letters, outbox
from workorder_pipeline.storage.bulk import chunks
from workorder_pipeline.storage.escalation_store import escalated_before, record_escalation
from workorder_pipeline.storage.one_of import one_of
from workorder_pipeline.storage.order_rows import with_sources
from workorder_pipeline.storage.outbox import Announcement
from workorder_pipeline.storage.tables import processed_command, work_order
from workorder_pipeline.storage.transaction import races_reported

_LOCK_ORDERS = (
    sa.select(work_order.c.id)
    .where(one_of(work_order.c.id, "ids"))
    .order_by(work_order.c.id)
    .with_for_update()
)


@contextmanager
def command_unit(engine: Engine, now: datetime) -> Iterator[CommandBatch]:
    """A batch of commands in a transaction, committed when the block ends normally."""
    with races_reported(), engine.begin() as conn:
        yield CommandBatch(conn, now)


class CommandBatch:
    """services.ports.CommandBatch over one database connection."""

    def __init__(self, conn: Connection, now: datetime) -> None:
        self._conn = conn
        self.now = now
        #: Exactly once: the position of the command being handled. Its announcements are
        #: stored with it, as published: they go out in the command's Kafka transaction.
        self.position: str | None = None
        #: Each announcement written with a position, in order.
        self.written: list[Announcement] = []

    def outbox_at(self, positions: Sequence[str]) -> dict[str, list[Announcement]]:
        """Announcements stored from these command positions, (topic, key, payload) in order."""
        return outbox.stored_at(self._conn, positions)

    def keep_originals(self, originals: Sequence[KeptOriginal]) -> None:
        """Keep masked dead letters' originals, in this batch's transaction."""
        dead_letters.keep(self._conn, originals)

    def log_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Count the batch's dead letters (the monthly report), in its transaction."""
        dead_letters.log(self._conn, letters)

    def processed(self, command_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in chunks(list(command_ids)):
            found.update(
                self._conn.execute(
                    sa.select(processed_command.c.command_id).where(processed_command.c.command_id.in_(chunk))
                ).scalars()
            )
        return found

    def lock_orders(self, order_ids: Sequence[str]) -> None:
        """Lock the orders a batch of commands will touch, all at once and in id order: the
        order intake's merges and dispatch marks lock them in. Locking them one by one in
        command order deadlocked against those (PostgreSQL, bench/README drills)."""
        if self._conn.dialect.name != "postgresql" or not order_ids:
            return
        for chunk in chunks(sorted(set(order_ids))):
            self._conn.execute(_LOCK_ORDERS, {"ids": chunk}).all()

    def order_row(self, order_id: str) -> dict[str, Any] | None:
        """The order's row, locked for this transaction where the database can."""
        query = sa.select(work_order).where(work_order.c.id == order_id)
        if self._conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = self._conn.execute(query).mappings().first()
        return None if row is None else dict(row)

    def apply(
        self,
        order_id: str,
        expected_status: WorkOrderStatus,
        changes: dict[str, Any],
        event: LifecycleEventName,
        actor: str,
        detail: dict[str, Any],
    ) -> None:
        """Change the order (still in ``expected_status``) and write the event in its history."""
        values = {
            key: (value.value if isinstance(value, StrEnum) else value) for key, value in changes.items()
        }
        if values.get("status") == WorkOrderStatus.closed.value:
            values["dedupe_slot"] = None  # a closed order absorbs nothing: a new one may open
        updated = self._conn.execute(
            sa.update(work_order)
            .where(work_order.c.id == order_id, work_order.c.status == expected_status.value)
            # Any change may move its clocks: the escalation tick looks at it next time.
            .values(**values, updated_at=self.now, next_check_at=work_order.c.created_at)
        ).rowcount
        if updated != 1:
            raise RuntimeError(f"order {order_id} changed under command handling")
        audit_trail.append(self._conn, [audit_trail.entry(order_id, self.now, event, detail, actor)])

    def refused(self, order_id: str, actor: str, detail: dict[str, Any]) -> None:
        """A refused command is part of the order's history too (执法全过程记录)."""
        entry = audit_trail.entry(order_id, self.now, LifecycleEventName.command_rejected, detail, actor)
        audit_trail.append(self._conn, [entry])

    def escalate_once(self, order_id: str, level: EscalationLevel, unit: str, due_at: datetime) -> bool:
        """Record an escalation of the order at ``level`` (and its history entry) in this
        transaction, unless the order was ever escalated at that level: once per order and
        level, whatever deadline it had then. The order is locked (order_row): two commands
        on it do not both find none."""
        if escalated_before(self._conn, order_id, level):
            return False
        row = {"work_order_id": order_id, "level": level.value, "due_at": due_at, "unit": unit}
        return record_escalation(self._conn, row, self.now)

    def to_outbox(self, topic: OutboxTopic, key: str, payload: str) -> None:
        outbox.put(self._conn, topic, key, payload, self.now, self.position)
        if self.position is not None:
            self.written.append((topic, key, payload))

    def record(self, command_id: str, order_id: str, outcome: StrEnum, reason: str) -> None:
        """Remember how the command was handled (Outcome.applied, or the refusal's code): a
        re-sent one has no second effect."""
        self._conn.execute(
            processed_command.insert(),
            [
                {
                    "command_id": command_id,
                    "work_order_id": order_id,
                    "received_at": self.now,
                    "outcome": outcome.value,
                    "reason": reason,
                }
            ],
        )

    def order(self, order_id: str) -> WorkOrder:
        row = self._conn.execute(sa.select(work_order).where(work_order.c.id == order_id)).mappings().one()
        return with_sources(self._conn, [row])[0]
