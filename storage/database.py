"""Engines and migrations."""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from psycopg.adapt import Dumper
from psycopg.pq import Format
from psycopg.types.array import ListBinaryDumper
from psycopg.types.json import JsonbBinaryDumper
from sqlalchemy.engine import Engine

from workorder_pipeline.schemas.errors import UnavailableError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def json_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


#: JSON columns (signal payloads, event details) through orjson: the standard library's
#: encoder was ~5% of the intake's CPU.
_JSON = {"json_serializer": json_text, "json_deserializer": orjson.loads}


#: Every PostgreSQL session in UTC: psycopg then hands times back in datetime.UTC itself,
#: which the stored times' type passes through as they are (a month's report reads a million
#: of them).
SESSION_OPTIONS = "-c TimeZone=UTC"
# Statements stay prepared on the server (psycopg: after 5 executions), though PostgreSQL may
# then keep one generic plan until the table's statistics change: on a fresh database the
# intake's lookups (``column = ANY($1)``) kept the whole-table scans planned while their
# tables were nearly empty, until autovacuum analyzed them (bench/server_statements.py
# --plans). Planning every statement for its values cost more than those scans in the
# pipeline (2026-12-06, one worker, Apache Kafka, fresh database, two rounds each: backlog
# 1,745 / 1,713 alarms/s prepared against 1,374 / 1,679 unprepared, p99 at 1,000 ev/s
# 242 / 464 against 682 / 352 ms); ``plan_cache_mode = force_custom_plan`` also re-plans
# the foreign-key check of every row a COPY writes.


def create_engine(url: str) -> Engine:
    """An engine tuned per backend: SQLite in WAL mode with a busy timeout."""
    if url.startswith("sqlite"):
        _ensure_sqlite_directory(url)
        engine = sa.create_engine(url, connect_args={"timeout": 30}, **_JSON)

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    engine = sa.create_engine(
        url,
        pool_pre_ping=True,
        connect_args={"options": SESSION_OPTIONS},
        **_JSON,
    )

    @sa.event.listens_for(engine, "connect")
    def _lists_in_binary(dbapi_connection: Any, _record: Any) -> None:
        # A list parameter (``column = ANY(%(keys)s)``) goes as a binary array: psycopg's
        # text format quotes each element through a regular expression (~4% of the intake).
        dbapi_connection.adapters.register_dumper(list, ListBinaryDumper)
        # JSON values of a binary COPY (storage/bulk.py): orjson's bytes as they are, where the
        # dumper SQLAlchemy installs calls json_text, decodes, and psycopg encodes again.
        dbapi_connection.adapters.register_dumper(None, _JsonbCopyDumper)

    return engine


class _JsonbCopyDumper(Dumper):
    """A jsonb value in binary, for a COPY whose column types are set (found by oid only)."""

    format = Format.BINARY
    oid = JsonbBinaryDumper.oid

    def dump(self, obj: Any) -> bytes:
        return b"\x01" + orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)  # format version 1


#: PostgreSQL advisory lock held while migrating, so workers starting together take turns.
MIGRATION_LOCK_ID = 0x574F_4D49  # "WOMI"


def migrate(url: str) -> None:
    """Bring the database schema to the newest revision (idempotent, safe to run concurrently)."""
    if url.startswith("sqlite"):
        _ensure_sqlite_directory(url)
        with _sqlite_migration_lock(url):
            _upgrade(url)
    else:
        _upgrade(url)


@contextlib.contextmanager
def _sqlite_migration_lock(url: str) -> Iterator[None]:
    """Workers starting together on one SQLite file take turns, as PostgreSQL's advisory lock
    makes them: an exclusive lock on ``<file>.migrating`` (released by the OS if we die)."""
    database = sa.engine.make_url(url).database
    if not database or database == ":memory:":
        yield
        return
    with open(f"{database}.migrating", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _upgrade(url: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(sa.text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
                connection.commit()
            config.attributes["connection"] = connection
            try:
                command.upgrade(config, "head")
            finally:
                if engine.dialect.name == "postgresql":
                    connection.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
                    connection.commit()
    finally:
        engine.dispose()


def _ensure_sqlite_directory(url: str) -> None:
    database = sa.engine.make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


class DatabaseUnavailable(UnavailableError):
    pass


def wait_for_database(
    url: str,
    timeout_s: float | None,
    on_retry: Callable[[float, Exception], None],
    first_delay_s: float = 0.5,
) -> None:
    """Connect until the database answers, backing off (0.5 s doubling to 15 s); raise
    DatabaseUnavailable naming the cause after ``timeout_s`` (None: never)."""
    engine = create_engine(url)
    deadline = time.monotonic() + timeout_s if timeout_s is not None else float("inf")
    delay = first_delay_s
    try:
        while True:
            try:
                with engine.connect() as connection:
                    connection.execute(sa.text("SELECT 1"))
                return
            except sa.exc.OperationalError as exc:
                if time.monotonic() + delay > deadline:
                    where = sa.engine.make_url(url).render_as_string(hide_password=True)
                    cause = " ".join(str(exc.orig).split())  # one line, for logs and terminals
                    raise DatabaseUnavailable(
                        f"database {where} unreachable for {timeout_s:g} s: {cause}"
                    ) from exc
                on_retry(delay, exc)
                time.sleep(delay)
                delay = min(delay * 2, 15.0)
    finally:
        engine.dispose()
