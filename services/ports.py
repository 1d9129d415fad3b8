"""What the services and the API need from the outside world, as protocols: the adapters
(streams/kafka, storage) implement them, and the API depends on these, not on them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from workorder_pipeline.schemas.commands import EscalationLevel, LifecycleEventName, WorkOrderCommand
from workorder_pipeline.schemas.commands import OutboxTopic as OutboxTopic
from workorder_pipeline.schemas.deadletter import DeadLetter, KeptOriginal
from workorder_pipeline.schemas.errors import UnavailableError
from workorder_pipeline.schemas.figures import OrderFacts
from workorder_pipeline.schemas.officers import ConsoleSession, Officer
from workorder_pipeline.schemas.officers import OfficerExists as OfficerExists
from workorder_pipeline.schemas.records import (
    DecidedCommand,
    ExtensionRequestQuery,
    OrderPage,
    OrderQuery,
    PendingExtension,
    PersonalDataRead,
)
from workorder_pipeline.schemas.signal import SourceKey
from workorder_pipeline.schemas.workorder import Occurrences, PipelineEventName, WorkOrder, WorkOrderStatus

#: (outbox topic, key, payload) of one announcement.
Announcement = tuple[str, str, str]


class CommandPublisher(Protocol):
    def publish(self, command: WorkOrderCommand) -> None:
        """Put the command on the commands topic; raise CommandNotPublished if it cannot."""


class CommandNotPublished(UnavailableError):
    pass


class OrderReads(Protocol):
    def order(self, order_id: str) -> WorkOrder | None:
        """The order; None when there is none with this id."""

    def orders(self, query: OrderQuery, now: datetime) -> OrderPage:
        """A page of the orders matching the query, newest first, and how many match in all
        (``now`` decides which are overdue)."""

    def history(self, order_id: str) -> list[dict[str, Any]]:
        """The order's audit trail, oldest first."""

    def notifications(self, order_id: str) -> list[dict[str, Any]]:
        """The order's notifications, oldest first, each with its ``attempt_log``."""

    def complainant(self, order_id: str) -> dict[str, Any]:
        """The complainant's data as the order's first signal gave it ({} without any)."""

    def sources(self, order_id: str) -> list[dict[str, Any]]:
        """The signals merged into the order (source_key, kind, received_at, payload), oldest first."""


class ExtensionRequestReads(Protocol):
    def pending_extensions(self, query: ExtensionRequestQuery) -> list[PendingExtension]:
        """Extension requests waiting for the command center, the order due first first."""


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


class FigureFactsReader(Protocol):
    def order_facts(self, start: datetime, end: datetime) -> list[OrderFacts]:
        """What each order created in [start, end) contributes to the figures, one per order."""


class ApiStore(
    OrderReads,
    ExtensionRequestReads,
    PersonalDataLog,
    CommandLedger,
    DeadLetterArchive,
    FigureFactsReader,
    Protocol,
):
    """Everything the HTTP API reads and records."""


# --- the units of work of the intake and of lifecycle commands ----------------------------
#
# A service opens one per batch (``with store.intake_batch(now) as batch:``): what the block
# writes commits when it ends normally, and nothing of it when it raises. A unit of work
# that lost a race on a unique index raises storage.transaction.LostRace: the service runs
# the whole unit again, once (services.unit_of_work.once_more_if_raced).


class IntakeBatch(Protocol):
    """One intake batch's reads and writes (the writes are buffered until the block ends)."""

    now: datetime

    def keep_originals(self, originals: Sequence[KeptOriginal]) -> None: ...
    def log_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Count dead letters for the monthly report (a re-delivered message counts once)."""

    def record_platforms(self, platforms: Mapping[str, datetime]) -> None:
        """Each publishing platform's newest event time in this batch (silence is judged on it)."""

    def known_sources(self, keys: Sequence[SourceKey]) -> dict[SourceKey, str | None]:
        """Source keys already recorded -> their order id (None for a suppressed signal)."""

    def source_positions(self, keys: Sequence[SourceKey]) -> dict[SourceKey, tuple[str, str | None]]:
        """Source key -> (its order id, the topic/partition/offset it was recorded from)."""

    def orders(self, ids: Sequence[str]) -> list[WorkOrder]: ...
    def undispatched(self, ids: Sequence[str]) -> list[WorkOrder]:
        """Those of ``ids`` registered earlier but never published."""

    def open_orders_by_dedupe_key(self, keys: Sequence[str]) -> dict[str, tuple[str, str, datetime]]:
        """Dedupe key -> (order id, unit, last seen) of its most recently seen open order."""

    def violations(self, keys: Sequence[str], since: datetime) -> dict[str, list[datetime]]: ...
    def open_orders_by_subject(self, subjects: Sequence[str]) -> dict[str, list[str]]: ...
    def record_signal(
        self,
        source: SourceKey,
        order_id: str,
        payload: dict[str, Any],
        position: str,
        event: PipelineEventName,
        detail: dict[str, Any],
        region_code: str | None = None,
    ) -> None:
        """Keep a signal as its order's evidence, with the row of the order's history it makes
        (``region_code``: the region routing used, which the monthly report counts by)."""

    def add_orders(self, orders: Sequence[WorkOrder]) -> None:
        """The orders the batch registers, as they are once every signal of it is merged."""

    def add_occurrences(self, merged: Mapping[str, Occurrences]) -> None:
        """Signals the batch merged into orders registered before it, by order id."""

    def suppress(self, source: SourceKey, record: dict[str, Any]) -> None: ...
    def mark_dispatched(
        self, orders: Sequence[WorkOrder], first_checks: Mapping[str, datetime | None] | None = None
    ) -> None:
        """Dispatched in this transaction, each with when the escalation tick first looks at
        it (by order id; not given: at once)."""


class IntakeStore(Protocol):
    def intake_batch(self, now: datetime) -> AbstractContextManager[IntakeBatch]: ...
    def mark_dispatched(
        self,
        orders: Sequence[WorkOrder],
        now: datetime,
        first_checks: Mapping[str, datetime | None] | None = None,
    ) -> None: ...
    def undispatched(self, limit: int = 1000) -> list[WorkOrder]: ...
    def keep_originals(self, originals: Sequence[KeptOriginal]) -> None: ...
    def log_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Count dead letters for the monthly report (a re-delivered message counts once)."""


class CommandBatch(Protocol):
    """A batch of lifecycle commands' reads and writes."""

    now: datetime
    #: Exactly once: the position of the command being handled (its announcements are stored
    #: with it, as published, and listed in ``written``).
    position: str | None
    written: list[Announcement]

    def outbox_at(self, positions: Sequence[str]) -> dict[str, list[Announcement]]: ...
    def keep_originals(self, originals: Sequence[KeptOriginal]) -> None: ...
    def log_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Count dead letters for the monthly report (a re-delivered message counts once)."""

    def processed(self, command_ids: Sequence[str]) -> set[str]: ...
    def lock_orders(self, order_ids: Sequence[str]) -> None: ...
    def order_row(self, order_id: str) -> Mapping[str, Any] | None: ...
    def apply(
        self,
        order_id: str,
        expected_status: WorkOrderStatus,
        changes: dict[str, Any],
        event: LifecycleEventName,
        actor: str,
        detail: dict[str, Any],
    ) -> None: ...
    def refused(self, order_id: str, actor: str, detail: dict[str, Any]) -> None: ...
    def escalate_once(self, order_id: str, level: EscalationLevel, unit: str, due_at: datetime) -> bool:
        """Record the escalation in the batch's transaction, once per order and level (False:
        it was recorded before); the leader's escalation check publishes it."""

    def to_outbox(self, topic: OutboxTopic, key: str, payload: str) -> None: ...
    def record(self, command_id: str, order_id: str, outcome: StrEnum, reason: str) -> None: ...
    def order(self, order_id: str) -> WorkOrder: ...


class CommandStore(Protocol):
    def command_batch(self, now: datetime) -> AbstractContextManager[CommandBatch]: ...
    def keep_originals(self, originals: Sequence[KeptOriginal]) -> None: ...
    def log_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Count dead letters for the monthly report (a re-delivered message counts once)."""

    def unpublished_outbox(self, limit: int = 1000) -> Sequence[Mapping[str, Any]]: ...
    def mark_outbox_published(self, ids: Sequence[int], now: datetime) -> None: ...


# --- officers' accounts and console sessions (services/officers.py owns the unit of work) ---


class OfficerBatch(Protocol):
    """One unit of work on accounts and sessions (committed when the block ends normally)."""

    now: datetime

    def officer(self, certificate_no: str) -> tuple[Officer, str] | None:
        """The account and its password hash; None when there is none."""

    def officers(self, unit: str | None) -> list[Officer]:
        """Every account (of ``unit`` when given), by unit then certificate number."""

    def add_officer(self, officer: Officer, password_hash: str) -> None:
        """A new account; raises OfficerExists when the certificate number has one."""

    def update_officer(
        self, certificate_no: str, *, disabled: bool | None, password_hash: str | None
    ) -> None: ...
    def session(self, token_sha256: str) -> ConsoleSession | None: ...
    def open_session(self, token_sha256: str, session: ConsoleSession) -> None: ...
    def touch_session(self, token_sha256: str) -> None: ...
    def close_sessions(self, *, token_sha256: str | None = None, certificate_no: str | None = None) -> None:
        """Close one session, or every session of an officer."""


class OfficerStore(Protocol):
    def officer_work(self, now: datetime) -> AbstractContextManager[OfficerBatch]: ...


#: [start, end) in UTC.
Window = tuple[datetime, datetime]


class ReportReads(Protocol):
    """What the monthly report reads (storage.report_store): counts grouped in the database,
    ``Counter``s keyed by the stored value ("" for none)."""

    def signals_by_kind(self, window: Window) -> Counter[str]: ...
    def signals_by_platform(self, window: Window) -> Counter[str]: ...
    def signals_by_category(self, window: Window) -> Counter[str]:
        """Complaints by category."""

    def signals_by_region(self, window: Window) -> Counter[str]: ...
    def orders_by_platform(self, window: Window) -> Counter[str]:
        """Orders by the platform or channel of the signal that registered each."""

    def orders_by(self, field: str, window: Window) -> Counter[str]:
        """Orders created in the window by ``kind``, ``category`` or ``region_code``."""

    def suppressed_by_reason(self, window: Window) -> Counter[str]: ...
    def dead_letters_by(self, field: str, window: Window) -> Counter[str]:
        """By ``reason`` or ``topic``."""

    def recurring(self, subject: str, window: Window, top: int) -> list[dict[str, Any]]:
        """Rows (key, name, kind, orders, closed, returned) of the ``top`` plates or enterprises."""

    def categories_by_place(self, window: Window, top: int) -> list[dict[str, Any]]: ...
    def repeated_checkin_failures(self, window: Window, at_least: int) -> list[dict[str, Any]]: ...
    def returns(self, window: Window) -> list[dict[str, Any]]:
        """Rows (reason, route_key, unit, n) of the returns made in the window."""

    def orders_by_route(self, window: Window) -> dict[str, int]: ...
    def clocks(self, window: Window) -> list[tuple[str, datetime, datetime | None, datetime | None]]:
        """(unit, created, accepted, closed) of each order created in the window."""

    def overdue(self, window: Window, top: int) -> tuple[list[dict[str, Any]], int]: ...
    def escalated(self, window: Window, top: int) -> tuple[list[dict[str, Any]], int]: ...
