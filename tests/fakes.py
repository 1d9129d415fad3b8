"""In-memory implementations of the ports (services.ports), for tests that need no database
and no broker. The storage and Kafka adapters keep their own tests on the real things."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.commands import WorkOrderCommand
from schemas.deadletter import KeptOriginal
from schemas.records import DecidedCommand, OrderQuery, PersonalDataRead
from schemas.workorder import WorkOrder, WorkOrderStatus
from services.ports import CommandNotPublished

_CLOSED = {WorkOrderStatus.closed}


@dataclass
class InMemoryApiStore:
    """services.ports.ApiStore over dicts."""

    orders_by_id: dict[str, WorkOrder] = field(default_factory=dict)
    histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    complainants: dict[str, dict[str, Any]] = field(default_factory=dict)
    read_log: list[PersonalDataRead] = field(default_factory=list)
    verdicts: dict[str, DecidedCommand] = field(default_factory=dict)
    sent: dict[str, str] = field(default_factory=dict)
    originals: dict[str, KeptOriginal] = field(default_factory=dict)

    def add(self, order: WorkOrder, complainant: dict[str, Any] | None = None) -> WorkOrder:
        self.orders_by_id[order.id] = order
        if complainant is not None:
            self.complainants[order.id] = complainant
        return order

    def order(self, order_id: str) -> WorkOrder | None:
        return self.orders_by_id.get(order_id)

    def orders(self, query: OrderQuery, now: datetime) -> list[WorkOrder]:
        found = [o for o in self.orders_by_id.values() if _matches(o, query, now)]
        found.sort(key=lambda o: (o.created_at, o.id), reverse=True)
        return found[query.offset : query.offset + query.limit]

    def history(self, order_id: str) -> list[dict[str, Any]]:
        return list(self.histories.get(order_id, []))

    def complainant(self, order_id: str) -> dict[str, Any]:
        return dict(self.complainants.get(order_id, {}))

    def dead_letter_original(self, original_id: str) -> KeptOriginal | None:
        return self.originals.get(original_id)

    def record_read(self, read: PersonalDataRead) -> None:
        self.read_log.append(read)

    def reads(
        self, *, work_order_id: str | None, since: datetime | None, until: datetime | None, limit: int
    ) -> list[PersonalDataRead]:
        found = [
            r
            for r in reversed(self.read_log)
            if (work_order_id is None or r.work_order_id == work_order_id)
            and (since is None or r.at >= since)
            and (until is None or r.at < until)
        ]
        return found[:limit]

    def decided(self, command_id: str) -> DecidedCommand | None:
        return self.verdicts.get(command_id)

    def record_sent(self, command_id: str, work_order_id: str, at: datetime) -> None:
        self.sent.setdefault(command_id, work_order_id)

    def sent_about(self, command_id: str) -> str | None:
        return self.sent.get(command_id)


def _matches(order: WorkOrder, query: OrderQuery, now: datetime) -> bool:
    overdue = order.status not in _CLOSED and order.due_at < now
    return (
        (query.unit is None or order.unit == query.unit)
        and (query.visible_to is None or query.visible_to in (order.unit, *order.copied_to))
        and (query.status is None or order.status is query.status)
        and (query.kind is None or order.kind is query.kind)
        and (query.priority is None or order.priority is query.priority)
        and (query.overdue is None or overdue is query.overdue)
        and (query.created_from is None or order.created_at >= query.created_from)
        and (query.created_to is None or order.created_at < query.created_to)
    )


@dataclass
class FakeWorker:
    """services.ports.CommandPublisher that decides each command at once, the way the
    worker's handler would record it (``verdict``: None leaves it undecided)."""

    store: InMemoryApiStore
    verdict: Callable[[WorkOrderCommand], DecidedCommand | None]
    published: list[WorkOrderCommand] = field(default_factory=list)
    broker_down: bool = False

    def publish(self, command: WorkOrderCommand) -> None:
        if self.broker_down:
            raise CommandNotPublished("the broker does not answer")
        self.published.append(command)
        decided = self.verdict(command)
        if decided is not None:
            self.store.verdicts.setdefault(command.command_id, decided)
