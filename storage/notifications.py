"""Notifications and their attempts (tables ``notification``, ``notification_attempt``,
and ``notification_recipient`` for the recipients of a receiver that is several).

Sending is leased: ``claim`` takes a due notification with a conditional UPDATE (a second
worker's UPDATE of the same row finds the lease taken and claims nothing) and records the
attempt as ``sending`` in the same transaction; ``finish`` records its result. A worker
killed between the two leaves the lease to expire and the attempt ``sending``: the next
claim marks it ``interrupted`` and sends again (at least once)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from workorder_pipeline.schemas.commands import LifecycleEventName
from workorder_pipeline.schemas.notifications import AttemptOutcome, NotificationLevel, NotificationStatus
from workorder_pipeline.schemas.workorder import WorkOrderStatus
from workorder_pipeline.storage.tables import (
    escalation,
    notification,
    notification_attempt,
    notification_recipient,
    work_order,
    work_order_event,
)

_S = WorkOrderStatus
#: Orders whose clock runs: what stays unresolved is notified again.
RUNNING_STATUSES = frozenset(
    {_S.dispatched.value, _S.accepted.value, _S.in_progress.value, _S.feedback_submitted.value}
)
_RUNNING = sorted(RUNNING_STATUSES)
_ORDER_FIELDS = (work_order.c.kind, work_order.c.priority, work_order.c.plate, work_order.c.due_at)
#: The history rows of an extension decision (processors.extensions).
_NOT_REPEATED = (NotificationLevel.delivery_failed.value, NotificationLevel.extension_decided.value)
DECISIONS = (LifecycleEventName.extension_approved.value, LifecycleEventName.extension_rejected.value)


class NotificationStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def unnotified_escalations(self, limit: int = 500) -> list[dict[str, Any]]:
        """Escalations whose notifications are not planned yet, with their order's fields."""
        e = escalation.c
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    e.id, e.work_order_id, e.level, e.due_at, e.unit, *_ORDER_FIELDS[:2], work_order.c.status
                )
                .join(work_order, work_order.c.id == e.work_order_id)
                .where(e.notified_at.is_(None))
                .order_by(e.id)
                .limit(limit)
            ).mappings()
            return [dict(row) for row in rows]

    def new_orders_unnotified(
        self, since: datetime, priorities: Sequence[str], limit: int = 500
    ) -> list[dict[str, Any]]:
        """Orders of ``priorities`` dispatched since ``since`` and still running, with no
        new_urgent_order notification yet (an order no route sends it to is looked at again:
        cheap, and a policy change then reaches it)."""
        w, n = work_order.c, notification.c
        told = sa.select(n.id).where(
            n.work_order_id == w.id, n.level == NotificationLevel.new_urgent_order.value
        )
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(w.id.label("work_order_id"), w.unit, w.kind, w.priority, w.due_at)
                .where(
                    w.dispatched_at >= since,
                    w.priority.in_(list(priorities)),
                    w.status.in_(_RUNNING),
                    ~sa.exists(told),
                )
                .order_by(w.dispatched_at)
                .limit(limit)
            ).mappings()
            return [dict(row) for row in rows]

    def decisions_unnotified(self, since: datetime, limit: int = 500) -> list[dict[str, Any]]:
        """Extension decisions made since ``since`` on orders still running, with no
        extension_decided notification for that moment yet (its ``deadline`` is the
        decision's moment), with their order's fields."""
        ev, w, n = work_order_event.c, work_order.c, notification.c
        told = sa.select(n.id).where(
            n.work_order_id == ev.work_order_id,
            n.level == NotificationLevel.extension_decided.value,
            n.deadline == ev.at,
        )
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(ev.work_order_id, ev.at, w.unit, w.kind, w.priority)
                .join(work_order, w.id == ev.work_order_id)
                .where(
                    ev.type.in_(DECISIONS),
                    ev.at >= since,
                    w.status.in_(_RUNNING),  # closed since: nothing left to do about it
                    ~sa.exists(told),
                )
                .order_by(ev.at, ev.id)
                .limit(limit)
            ).mappings()
            return [dict(row) for row in rows]

    def plan(self, rows: Sequence[dict[str, Any]], escalation_ids: Sequence[int], now: datetime) -> int:
        """Insert the notifications not planned yet (by id) and mark the escalations they
        came from, in one transaction. Returns how many were new."""
        with self._engine.begin() as conn:
            new = _insert_new(conn, rows)
            if escalation_ids:
                conn.execute(
                    sa.update(escalation)
                    .where(escalation.c.id.in_(list(escalation_ids)))
                    .values(notified_at=now)
                )
        return new

    def unresolved_sent(self, sent_by: datetime, below_round: int, limit: int = 500) -> list[dict[str, Any]]:
        """Sent notifications of orders still running, last sent by ``sent_by``, of a round
        below ``below_round``: candidates for a repeat (the caller decides which round)."""
        n = notification.c
        later = notification.alias("later")
        repeated = sa.select(later.c.id).where(
            later.c.work_order_id == n.work_order_id,
            later.c.level == n.level,
            later.c.deadline == n.deadline,
            later.c.receiver == n.receiver,
            later.c.round > n.round,
        )
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(notification)
                .join(work_order, work_order.c.id == n.work_order_id)
                .where(
                    ~sa.exists(repeated),  # only the latest round of each
                    n.status == NotificationStatus.sent.value,
                    n.sent_at <= sent_by,
                    n.round < below_round,
                    # Told once: a failure notice, and a decision (nothing left unresolved).
                    n.level.not_in(_NOT_REPEATED),
                    work_order.c.status.in_(_RUNNING),
                )
                .order_by(n.sent_at)
                .limit(limit)
            ).mappings()
            return [dict(row) for row in rows]

    def insert(self, rows: Sequence[dict[str, Any]]) -> int:
        with self._engine.begin() as conn:
            return _insert_new(conn, rows)

    def claim(self, now: datetime, lease: timedelta, limit: int = 50) -> list[dict[str, Any]]:
        """Due notifications this worker now holds until ``now + lease``, each with its
        attempt number (recorded as ``sending``) and its order's fields."""
        n = notification.c
        with self._engine.connect() as conn:
            candidates = conn.execute(
                sa.select(n.id)
                .where(
                    n.status == NotificationStatus.pending.value,
                    n.send_after <= now,
                    sa.or_(n.lease_until.is_(None), n.lease_until <= now),
                )
                .order_by(n.send_after)
                .limit(limit)
            ).scalars()
            ids = list(candidates)
        return [claimed for id_ in ids if (claimed := self._claim_one(id_, now, lease)) is not None]

    def _claim_one(self, notification_id: str, now: datetime, lease: timedelta) -> dict[str, Any] | None:
        n = notification.c
        with self._engine.begin() as conn:
            taken = conn.execute(
                sa.update(notification)
                .where(
                    n.id == notification_id,
                    n.status == NotificationStatus.pending.value,
                    sa.or_(n.lease_until.is_(None), n.lease_until <= now),
                )
                .values(lease_until=now + lease, attempts=n.attempts + 1)
            ).rowcount
            if taken != 1:
                return None  # another worker holds it, or it was sent meanwhile
            conn.execute(
                sa.update(notification_attempt)
                .where(
                    notification_attempt.c.notification_id == notification_id,
                    notification_attempt.c.outcome == AttemptOutcome.sending.value,
                )
                .values(
                    outcome=AttemptOutcome.interrupted.value,
                    finished_at=now,
                    detail="worker stopped mid-send",
                )
            )
            row = dict(
                conn.execute(
                    sa.select(
                        notification,
                        *_ORDER_FIELDS[:3],
                        work_order.c.unit,
                        work_order.c.due_at.label("order_due_at"),
                    )
                    .join(work_order, work_order.c.id == n.work_order_id)
                    .where(n.id == notification_id)
                )
                .mappings()
                .one()
            )
            if row["about"] is not None:  # a delivery_failed notice: what failed, to whom
                about = conn.execute(sa.select(n.level, n.receiver).where(n.id == row["about"])).one()
                row["about_level"], row["about_receiver"] = about.level, about.receiver
            if row["level"] == NotificationLevel.extension_decided.value:
                row |= _decision(conn, row["work_order_id"], row["deadline"])
            conn.execute(
                sa.insert(notification_attempt).values(
                    notification_id=notification_id,
                    attempt=row["attempts"],
                    channel=row["channel"],
                    outcome=AttemptOutcome.sending.value,
                    started_at=now,
                )
            )
            return row

    def finish(
        self,
        claimed: dict[str, Any],
        outcome: AttemptOutcome,
        code: str | None,
        detail: str,
        now: datetime,
        changes: dict[str, Any],
        follow_up: Sequence[dict[str, Any]] = (),
    ) -> None:
        """Record the attempt's result, apply ``changes`` to the notification (status, next
        send_after), release it and insert ``follow_up`` (the command center's notice)."""
        a = notification_attempt.c
        with self._engine.begin() as conn:
            conn.execute(
                sa.update(notification_attempt)
                .where(a.notification_id == claimed["id"], a.attempt == claimed["attempts"])
                .values(outcome=outcome.value, response_code=code, detail=detail[:300], finished_at=now)
            )
            conn.execute(
                sa.update(notification)
                .where(notification.c.id == claimed["id"])
                .values(**changes, lease_until=None)
            )
            _insert_new(conn, follow_up)

    def delivered_recipients(self, notification_id: str) -> frozenset[str]:
        """The recipients (keys) that have the notification from an earlier attempt."""
        r = notification_recipient.c
        with self._engine.connect() as conn:
            found = conn.execute(sa.select(r.recipient).where(r.notification_id == notification_id))
            return frozenset(found.scalars())

    def record_recipient(self, notification_id: str, recipient: str, attempt: int, now: datetime) -> None:
        """``recipient`` has it: committed at once, so neither a retry nor another worker
        after a crash sends it to them again. Recording it twice keeps the first."""
        insert = pg_insert if self._engine.dialect.name == "postgresql" else sqlite_insert
        row = {"notification_id": notification_id, "recipient": recipient, "attempt": attempt}
        with self._engine.begin() as conn:
            conn.execute(
                insert(notification_recipient)
                .values(**row, delivered_at=now)
                .on_conflict_do_nothing(index_elements=["notification_id", "recipient"])
            )

    def history(self, order_id: str) -> list[dict[str, Any]]:
        """The order's notifications, oldest first, each with its attempts."""
        n, a = notification.c, notification_attempt.c
        with self._engine.connect() as conn:
            found = [
                dict(row)
                for row in conn.execute(
                    sa.select(notification).where(n.work_order_id == order_id).order_by(n.created_at, n.id)
                ).mappings()
            ]
            attempts = conn.execute(
                sa.select(notification_attempt)
                .where(a.notification_id.in_([row["id"] for row in found]))
                .order_by(a.notification_id, a.attempt)
            ).mappings()
            by_id: dict[str, list[dict[str, Any]]] = {}
            for attempt in attempts:
                by_id.setdefault(attempt["notification_id"], []).append(dict(attempt))
        return [{**row, "attempt_log": by_id.get(row["id"], [])} for row in found]


def _decision(conn: Connection, order_id: str, at: datetime) -> dict[str, Any]:
    """The extension decision made on the order at ``at``: its name and, for an approval,
    the deadline it set."""
    ev = work_order_event.c
    found = conn.execute(
        sa.select(ev.type, ev.detail)
        .where(ev.work_order_id == order_id, ev.at == at, ev.type.in_(DECISIONS))
        .order_by(ev.id.desc())
        .limit(1)
    ).one()
    moved = found.detail.get("to") if found.type == LifecycleEventName.extension_approved.value else None
    return {"decision": found.type, "decided_due_at": datetime.fromisoformat(moved) if moved else None}


def _insert_new(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    if not rows:
        return 0
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    new = 0
    for row in rows:
        # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT DO NOTHING
        # here, which made plan() count one new notification as -1 on PostgreSQL.
        statement = insert(notification).values(**row).on_conflict_do_nothing(index_elements=["id"])
        new += len(conn.execute(statement.returning(notification.c.id)).all())
    return new
