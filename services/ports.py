"""What the services and the API need from the outside world, as protocols: the adapters
(streams/kafka, storage) implement them, and the API depends on these, not on them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from schemas.commands import WorkOrderCommand
from schemas.deadletter import KeptOriginal
from schemas.errors import UnavailableError
from schemas.records import DecidedCommand, OrderQuery, PersonalDataRead
from schemas.workorder import WorkOrder


class CommandPublisher(Protocol):
    def publish(self, command: WorkOrderCommand) -> None:
        """Put the command on the commands topic; raise CommandNotPublished if it cannot."""


class CommandNotPublished(UnavailableError):
    pass


class OutboxTopic(StrEnum):
    """Where an outbox row goes (resolved to a topic name by the worker)."""

    lifecycle = "lifecycle"
    dispatched = "dispatched"


class OrderReads(Protocol):
    def order(self, order_id: str) -> WorkOrder | None:
        """The order; None when there is none with this id."""

    def orders(self, query: OrderQuery, now: datetime) -> list[WorkOrder]:
        """Orders matching the query, newest first (``now`` decides which are overdue)."""

    def history(self, order_id: str) -> list[dict[str, Any]]:
        """The order's audit trail, oldest first."""

    def complainant(self, order_id: str) -> dict[str, Any]:
        """The complainant's data as the order's first signal gave it ({} without any)."""


class PersonalDataLog(Protocol):
    def record_read(self, read: PersonalDataRead) -> None:
        """Remember a read of personal data."""

    def reads(
        self, *, work_order_id: str | None, since: datetime | None, until: datetime | None, limit: int
    ) -> list[PersonalDataRead]:
        """The reads matching every filter given, newest first."""


class CommandLedger(Protocol):
    def decided(self, command_id: str) -> DecidedCommand | None:
        """How the worker decided the command; None while it has not."""

    def record_sent(self, command_id: str, work_order_id: str, at: datetime) -> None:
        """Remember a command the API put on the topic (a re-sent one keeps its first record)."""

    def sent_about(self, command_id: str) -> str | None:
        """The order a command the API sent is about; None for one it never sent."""


class DeadLetterArchive(Protocol):
    def dead_letter_original(self, original_id: str) -> KeptOriginal | None:
        """A masked dead letter's original message; None when there is none (or it is past
        its retention)."""


class ApiStore(OrderReads, PersonalDataLog, CommandLedger, DeadLetterArchive, Protocol):
    """Everything the HTTP API reads and records."""
