"""The HTTP API's port (services.ports.ApiStore) on the pipeline's database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from workorder_pipeline.schemas.commands import Outcome, RefusalCode
from workorder_pipeline.schemas.deadletter import KeptOriginal
from workorder_pipeline.schemas.figures import OrderFacts
from workorder_pipeline.schemas.records import (
    DecidedCommand,
    ExtensionRequestQuery,
    OrderPage,
    OrderQuery,
    PendingExtension,
    PersonalDataRead,
)
from workorder_pipeline.schemas.workorder import WorkOrder
from workorder_pipeline.storage.dead_letters import DeadLetterOriginals
from workorder_pipeline.storage.extension_requests_read import pending_extensions
from workorder_pipeline.storage.figures_read import FigureFacts
from workorder_pipeline.storage.notifications import NotificationStore
from workorder_pipeline.storage.personal_data import PersonalDataReads
from workorder_pipeline.storage.repository import WorkOrderRepository
from workorder_pipeline.storage.sent_commands import SentCommands


class ApiStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._repository = WorkOrderRepository(engine)
        self._reads = PersonalDataReads(engine)
        self._sent = SentCommands(engine)
        self._originals = DeadLetterOriginals(engine)
        self._figures = FigureFacts(engine)
        self._notifications = NotificationStore(engine)

    def order_facts(self, start: datetime, end: datetime) -> list[OrderFacts]:
        return self._figures.order_facts(start, end)

    def order(self, order_id: str) -> WorkOrder | None:
        return self._repository.get(order_id)

    def orders(self, query: OrderQuery, now: datetime) -> OrderPage:
        return self._repository.page(query, now)

    def pending_extensions(self, query: ExtensionRequestQuery) -> list[PendingExtension]:
        return pending_extensions(self._engine, query)

    def sources(self, order_id: str) -> list[dict[str, Any]]:
        return self._repository.sources(order_id)

    def history(self, order_id: str) -> list[dict[str, Any]]:
        return self._repository.history(order_id)

    def notifications(self, order_id: str) -> list[dict[str, Any]]:
        return self._notifications.history(order_id)

    def complainant(self, order_id: str) -> dict[str, Any]:
        payload: dict[str, Any] = next((s["payload"] for s in self._repository.sources(order_id)), {})
        found: dict[str, Any] = payload.get("complainant") or {}
        return found

    def dead_letter_original(self, original_id: str) -> KeptOriginal | None:
        return self._originals.get(original_id)

    def record_read(self, read: PersonalDataRead) -> None:
        self._reads.record(read)

    def reads(
        self, *, work_order_id: str | None, since: datetime | None, until: datetime | None, limit: int
    ) -> list[PersonalDataRead]:
        return self._reads.listed(work_order_id=work_order_id, since=since, until=until, limit=limit)

    def decided(self, command_id: str) -> DecidedCommand | None:
        row = self._repository.command_outcome(command_id)
        if row is None:
            return None
        # A stored code this version does not know raises here, rather than answer a guess.
        refusal = None if row["outcome"] == Outcome.applied else RefusalCode(row["outcome"])
        return DecidedCommand(row["command_id"], row["work_order_id"], refusal, row["reason"])

    def record_sent(self, command_id: str, work_order_id: str, at: datetime) -> None:
        self._sent.record(command_id, work_order_id, at)

    def sent_about(self, command_id: str) -> str | None:
        return self._sent.work_order_of(command_id)
