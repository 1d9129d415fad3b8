"""The work-order repository: the storage adapter of the services' ports (services.ports),
one class over the modules that each hold one concept:

- orders_read: orders, their history and signals, commands decided;
- intake_uow / command_uow: the units of work of the intake and of lifecycle commands;
- dispatch_marks, escalation_store, deadline_store, outbox: the pipeline's other writes;
- audit_trail: the one writer of an order's history.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy.engine import Engine

from workorder_pipeline.schemas.deadletter import DeadLetter, KeptOriginal
from workorder_pipeline.storage import dead_letters
from workorder_pipeline.storage.command_uow import CommandBatch, command_unit
from workorder_pipeline.storage.deadline_store import DeadlineStore
from workorder_pipeline.storage.dispatch_marks import DispatchMarks
from workorder_pipeline.storage.escalation_store import EscalationStore
from workorder_pipeline.storage.intake_uow import IntakeBatch, intake_unit
from workorder_pipeline.storage.orders_read import OrderReads
from workorder_pipeline.storage.outbox import Outbox


class WorkOrderRepository(OrderReads, DispatchMarks, EscalationStore, DeadlineStore, Outbox):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        return self._engine

    def intake_batch(self, now: datetime) -> AbstractContextManager[IntakeBatch]:
        """An intake batch's unit of work (storage.intake_uow)."""
        return intake_unit(self._engine, now)

    def read_only(self, now: datetime) -> AbstractContextManager[IntakeBatch]:
        """An intake batch against the current state that rolls back whatever it wrote."""
        return intake_unit(self._engine, now, commit=False)

    def command_batch(self, now: datetime) -> AbstractContextManager[CommandBatch]:
        """A batch of lifecycle commands' unit of work (storage.command_uow)."""
        return command_unit(self._engine, now)

    def keep_originals(self, originals: Sequence[KeptOriginal]) -> None:
        """Keep masked dead letters' originals, in a transaction of their own."""
        dead_letters.DeadLetterOriginals(self._engine).keep(originals)

    def log_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Count dead letters (the monthly report), in a transaction of their own."""
        with self._engine.begin() as conn:
            dead_letters.log(conn, letters)
