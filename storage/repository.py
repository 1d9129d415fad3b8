"""The work-order repository: the only code that reads or writes work-order tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from schemas.signal import SignalKind
from schemas.workorder import Priority, Subject, WorkOrder, WorkOrderStatus
from storage.tables import work_order, work_order_event, work_order_source

PIPELINE_ACTOR = "pipeline"


@dataclass(frozen=True, slots=True)
class NewOrder:
    """An order the intake wants registered, with the evidence and reasons behind it."""

    order: WorkOrder
    #: The validated event as received (extra fields included), kept as evidence.
    payload: dict[str, Any]
    #: Why it was routed as it was; goes into the audit trail.
    decision: dict[str, Any]

    @property
    def source_key(self) -> str:
        return source_key(self.order.kind, self.order.source_ids[0])


def source_key(kind: SignalKind, source_id: str) -> str:
    return f"{kind.value}:{source_id}"


@dataclass(frozen=True, slots=True)
class RegisterOutcome:
    created: list[WorkOrder] = field(default_factory=list)
    #: Signals whose publisher id was already known (re-deliveries), by kind.
    redelivered: list[SignalKind] = field(default_factory=list)
    #: Orders that still need publishing: the created ones, and known ones never published.
    to_dispatch: list[WorkOrder] = field(default_factory=list)


class WorkOrderRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def register(self, batch: Sequence[NewOrder], now: datetime) -> RegisterOutcome:
        """Record a batch of new orders in one transaction; known publisher ids add nothing.

        Two workers racing on one publisher id make the loser's transaction fail on the
        primary key; it is retried once, and then sees the winner's row as known.
        """
        try:
            return self._register(batch, now)
        except IntegrityError:
            return self._register(batch, now)

    def _register(self, batch: Sequence[NewOrder], now: datetime) -> RegisterOutcome:
        unique: dict[str, NewOrder] = {}
        redelivered: list[SignalKind] = []
        for item in batch:
            if item.source_key in unique:
                redelivered.append(item.order.kind)
            else:
                unique[item.source_key] = item
        with self._engine.begin() as conn:
            known = self._known_sources(conn, list(unique))
            fresh = [item for key, item in unique.items() if key not in known]
            redelivered += [unique[key].order.kind for key in known]
            if fresh:
                conn.execute(work_order.insert(), [_order_row(i.order, now) for i in fresh])
                conn.execute(
                    work_order_source.insert(),
                    [
                        {
                            "source_key": i.source_key,
                            "work_order_id": i.order.id,
                            "kind": i.order.kind.value,
                            "received_at": now,
                            "payload": i.payload,
                        }
                        for i in fresh
                    ],
                )
                conn.execute(
                    work_order_event.insert(),
                    [
                        {
                            "work_order_id": i.order.id,
                            "at": now,
                            "type": "registered",
                            "actor": PIPELINE_ACTOR,
                            "detail": i.decision,
                        }
                        for i in fresh
                    ],
                )
            undispatched = self._undispatched(conn, set(known.values()))
        created = [item.order for item in fresh]
        return RegisterOutcome(created, redelivered, created + undispatched)

    def mark_dispatched(self, orders: Sequence[WorkOrder], now: datetime) -> None:
        """Record that these orders were published to their squads (once per order)."""
        if not orders:
            return
        ids = [order.id for order in orders]
        with self._engine.begin() as conn:
            newly = conn.execute(
                sa.update(work_order)
                .where(work_order.c.id.in_(ids), work_order.c.dispatched_at.is_(None))
                .values(dispatched_at=now, updated_at=now, status=WorkOrderStatus.dispatched.value)
                .returning(work_order.c.id, work_order.c.unit)
            ).all()
            if newly:
                conn.execute(
                    work_order_event.insert(),
                    [
                        {
                            "work_order_id": row.id,
                            "at": now,
                            "type": "dispatched",
                            "actor": PIPELINE_ACTOR,
                            "detail": {"unit": row.unit},
                        }
                        for row in newly
                    ],
                )

    def undispatched(self, limit: int = 1000) -> list[WorkOrder]:
        """Registered orders not yet published (e.g. the worker died between the two steps)."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(work_order)
                .where(work_order.c.dispatched_at.is_(None))
                .order_by(work_order.c.created_at)
                .limit(limit)
            ).mappings()
            return self._with_sources(conn, list(rows))

    def get(self, order_id: str) -> WorkOrder | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(work_order).where(work_order.c.id == order_id)).mappings().first()
            return self._with_sources(conn, [row])[0] if row else None

    def history(self, order_id: str) -> list[dict[str, Any]]:
        """The order's audit trail, oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(work_order_event)
                .where(work_order_event.c.work_order_id == order_id)
                .order_by(work_order_event.c.id)
            ).mappings()
            return [dict(row) for row in rows]

    def count(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(work_order)).scalar_one())

    @staticmethod
    def _known_sources(conn: Connection, keys: list[str]) -> dict[str, str]:
        if not keys:
            return {}
        rows = conn.execute(
            sa.select(work_order_source.c.source_key, work_order_source.c.work_order_id).where(
                work_order_source.c.source_key.in_(keys)
            )
        )
        return {row.source_key: row.work_order_id for row in rows}

    def _undispatched(self, conn: Connection, ids: set[str]) -> list[WorkOrder]:
        if not ids:
            return []
        rows = conn.execute(
            sa.select(work_order).where(work_order.c.id.in_(ids), work_order.c.dispatched_at.is_(None))
        ).mappings()
        return self._with_sources(conn, list(rows))

    @staticmethod
    def _with_sources(conn: Connection, rows: list[RowMapping]) -> list[WorkOrder]:
        if not rows:
            return []
        sources: dict[str, list[str]] = {}
        for source in conn.execute(
            sa.select(work_order_source.c.work_order_id, work_order_source.c.source_key)
            .where(work_order_source.c.work_order_id.in_([row["id"] for row in rows]))
            .order_by(work_order_source.c.received_at, work_order_source.c.source_key)
        ):
            sources.setdefault(source.work_order_id, []).append(source.source_key.split(":", 1)[1])
        return [_order_from_row(row, sources.get(row["id"], [])) for row in rows]


def _order_row(order: WorkOrder, now: datetime) -> dict[str, Any]:
    return {
        "id": order.id,
        "kind": order.kind.value,
        "status": order.status.value,
        "unit": order.unit,
        "priority": order.priority.value,
        "route_key": order.route_key,
        "created_at": order.created_at,
        "updated_at": now,
        "due_at": order.due_at,
        "dispatched_at": None,
        "plate": order.subject.plate,
        "enterprise_id": order.subject.enterprise_id,
        "enterprise_name": order.subject.enterprise_name,
        "region_code": order.subject.region_code,
        "place": order.subject.place,
        "summary": order.summary,
        "occurrences": order.occurrences,
        "first_seen_at": order.first_seen_at,
        "last_seen_at": order.last_seen_at,
        "upstream_due_at": order.upstream_due_at,
    }


def _order_from_row(row: RowMapping, source_ids: list[str]) -> WorkOrder:
    return WorkOrder(
        id=row["id"],
        kind=SignalKind(row["kind"]),
        status=WorkOrderStatus(row["status"]),
        unit=row["unit"],
        priority=Priority(row["priority"]),
        route_key=row["route_key"],
        created_at=row["created_at"],
        due_at=row["due_at"],
        subject=Subject(
            plate=row["plate"],
            enterprise_id=row["enterprise_id"],
            enterprise_name=row["enterprise_name"],
            region_code=row["region_code"],
            place=row["place"],
        ),
        summary=row["summary"],
        source_ids=tuple(source_ids),
        occurrences=row["occurrences"],
        first_seen_at=row["first_seen_at"],
        last_seen_at=row["last_seen_at"],
        upstream_due_at=row["upstream_due_at"],
    )
