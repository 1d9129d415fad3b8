"""Is a failure worth waiting for, or will the same work fail the same way again?

One answer for every loop that retries (the intake consumer, the commands agent, the
outbox relay: streams/retry.py). Transient: the database or the broker is unreachable,
busy or timed out, a deadlock or a serialization failure, or another worker opened an order
for a dedupe key of the batch first (a conflict: done again, the batch merges into that
order); the work is kept and retried as long as it takes. Anything else is permanent:
retrying the same messages cannot help, so they are split until the ones that fail are
alone, and those are set aside with the error's class name (never its message: messages
can quote values, values personal data).
"""

from __future__ import annotations

import sqlite3
from enum import StrEnum

import aiokafka.errors
import kafka.errors
import psycopg
import sqlalchemy.exc

from workorder_pipeline.storage.dedupe_slots import DedupeSlotTaken


class WaitingFor(StrEnum):
    """What a transient failure waits for (a metric label: a closed set)."""

    database = "database"
    broker = "broker"
    network = "network"
    #: Another worker won a race for the same data (storage.dedupe_slots): done again, the
    #: work sees the winner's.
    conflict = "conflict"


#: SQLite reports a busy or full database as an OperationalError, like a syntax error:
#: these phrases are the ones that pass with time.
_SQLITE_TRANSIENT = ("locked", "busy", "unable to open", "disk i/o", "full")

_KAFKA_TRANSIENT = (
    aiokafka.errors.KafkaConnectionError,
    aiokafka.errors.KafkaTimeoutError,
    aiokafka.errors.NodeNotReadyError,
    aiokafka.errors.RequestTimedOutError,
    kafka.errors.KafkaConnectionError,
    kafka.errors.KafkaTimeoutError,
    kafka.errors.NodeNotReadyError,
    kafka.errors.RequestTimedOutError,
)


def transient(exc: BaseException) -> WaitingFor | None:
    """What ``exc`` (or an exception it was raised from) waits for; None: it is permanent."""
    current: BaseException | None = exc
    while current is not None:
        found = _transient_itself(current)
        if found is not None:
            return found
        current = current.__cause__
    return None


def _transient_itself(exc: BaseException) -> WaitingFor | None:
    if isinstance(exc, DedupeSlotTaken):
        return WaitingFor.conflict
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated:
            return WaitingFor.database
        if isinstance(exc.orig, sqlite3.OperationalError):
            return _sqlite(exc.orig)
        return _transient_itself(exc.orig) if isinstance(exc.orig, BaseException) else None
    if isinstance(exc, sqlalchemy.exc.TimeoutError | sqlalchemy.exc.DisconnectionError):
        return WaitingFor.database  # no connection free in the pool, or one lost
    if isinstance(exc, psycopg.OperationalError):
        # Connection lost or refused, deadlock, serialization failure, statement timeout,
        # server shutting down: PostgreSQL's SQLSTATE classes 08, 40, 53, 57, 58.
        return WaitingFor.database
    if isinstance(exc, sqlite3.OperationalError):
        return _sqlite(exc)
    if isinstance(exc, _KAFKA_TRANSIENT) or (
        isinstance(exc, aiokafka.errors.KafkaError | kafka.errors.KafkaError) and exc.retriable
    ):
        return WaitingFor.broker
    if isinstance(exc, ConnectionError | TimeoutError):
        return WaitingFor.network
    return None


def _sqlite(exc: sqlite3.OperationalError) -> WaitingFor | None:
    message = str(exc).lower()
    return WaitingFor.database if any(phrase in message for phrase in _SQLITE_TRANSIENT) else None


def transient_detail(exc: BaseException) -> str:
    """What a log line may say of a transient failure: the driver's own message (a host, a
    timeout, a lock), one line, without SQLAlchemy's additions (the statement and its
    parameters: values)."""
    original = exc.orig if isinstance(exc, sqlalchemy.exc.DBAPIError) else exc
    lines = str(original).strip().splitlines()
    return lines[0][:300] if lines else ""


def error_name(exc: BaseException) -> str:
    """The error's class (and the database driver's, under SQLAlchemy's wrapper): what a log
    line or a dead letter may say of a failure, since its message may quote values."""
    name = type(exc).__name__
    original = getattr(exc, "orig", None)
    if isinstance(exc, sqlalchemy.exc.DBAPIError) and isinstance(original, BaseException):
        return f"{name}({type(original).__name__})"
    return name
