"""Many rows in one statement: an intake batch's writes without a per-row cost.

SQLAlchemy's executemany builds and type-processes a parameter dict per row, and psycopg
then sends one prepared statement per row (~25,000 statements through its pipeline for
10,000 alarms: half of the intake's CPU on PostgreSQL). Here the rows are read as tuples and
only the columns that need it converted, to what SQLAlchemy's column types would hand the
driver (a time: checked for a zone for PostgreSQL, made into SQLite's text by one call), and

- PostgreSQL receives a binary ``COPY ... FROM STDIN`` (psycopg formats the rows in C; the
  server neither parses a statement nor unpacks arrays: 15 → 10 µs of its CPU per row of
  work_order_source and work_order_event, issue 22), or, for a column type not mapped
  below, one ``INSERT ... SELECT ... FROM unnest(<one array per column>)``;
- SQLite one executemany of plain tuples (the sqlite3 module loops in C).

Only plain inserts: a duplicate key fails the statement as an ``IntegrityError``, like
SQLAlchemy's insert does.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from workorder_pipeline.storage.database import json_text
from workorder_pipeline.storage.schema_base import UtcDateTime

Convert = Callable[[Any], Any] | None


def insert_rows(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys, values as SQLAlchemy takes them) into ``table``."""
    if not rows:
        return
    names = tuple(rows[0])
    if any(len(row) != len(names) for row in rows):
        raise ValueError(f"{table.name}: every row of one insert must name the same columns")
    if conn.dialect.name == "postgresql":
        copy_types = _copy_types(conn.dialect, table, names)
        if copy_types is not None:
            converted = _converted_rows([convert for _, convert in copy_types], names, rows)
            _copy_rows(conn, table, names, copy_types, converted)
            return
    statement, converters = _prepared(conn.dialect, table, names)
    if conn.dialect.name == "postgresql":
        columns = [_converted(converters[i], [row[name] for row in rows]) for i, name in enumerate(names)]
        conn.exec_driver_sql(statement, tuple(columns))
    else:
        conn.exec_driver_sql(statement, _converted_rows(converters, names, rows))


def _converted_rows(
    converters: Sequence[Convert], names: tuple[str, ...], rows: Sequence[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    """The rows as tuples in ``names``' order, each value converted by its column's converter
    (read by one C call per row; only the columns with a converter go through Python)."""
    pick = operator.itemgetter(*names)
    if len(names) == 1:
        picked: list[tuple[Any, ...]] = [(pick(row),) for row in rows]
    else:
        picked = list(map(pick, rows))
    converting = [(i, convert) for i, convert in enumerate(converters) if convert is not None]
    if not converting:
        return picked
    columns = list(zip(*picked, strict=True))
    for i, convert in converting:
        columns[i] = tuple(_converted(convert, list(columns[i])))
    return list(zip(*columns, strict=True))


CopyTypes = tuple[tuple[str, Convert], ...]


def _copy_rows(
    conn: Connection,
    table: sa.Table,
    names: tuple[str, ...],
    types: CopyTypes,
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """PostgreSQL: COPY the rows in binary, in the connection's transaction. Errors come out
    as SQLAlchemy's (a duplicate key as IntegrityError, a lost connection invalidated)."""
    quote = conn.dialect.identifier_preparer.quote
    statement = f"COPY {quote(table.name)} ({', '.join(map(quote, names))}) FROM STDIN (FORMAT BINARY)"
    if not conn.in_transaction():
        conn.begin()  # as an execute would: the caller's commit() then commits the COPY too
    driver: psycopg.Connection[Any] = conn.connection.driver_connection  # type: ignore[assignment]
    cursor = driver.cursor()
    try:
        with cursor.copy(statement) as copy:
            copy.set_types([pg_type for pg_type, _ in types])
            for row in rows:
                copy.write_row(row)
    except psycopg.Error as exc:
        lost = conn.dialect.is_disconnect(cast(Any, exc), conn.connection.dbapi_connection, None)
        if lost:
            conn.invalidate(exc)
        raise sa.exc.DBAPIError.instance(
            statement, None, exc, psycopg.Error, connection_invalidated=lost
        ) from exc
    finally:
        cursor.close()


@functools.lru_cache(maxsize=256)
def _copy_types(dialect: Dialect, table: sa.Table, names: tuple[str, ...]) -> CopyTypes | None:
    """Each column's PostgreSQL type and value converter for a binary COPY; None when a column
    has a type this does not know (the rows then go as one INSERT ... unnest)."""
    found: list[tuple[str, Convert]] = []
    for name in names:
        column = table.c[name]
        if _is_json(column, dialect):
            found.append(("jsonb", None))
            continue
        impl = column.type.dialect_impl(dialect)
        base = impl.impl if isinstance(impl, sa.TypeDecorator) else impl
        pg = next((pg for kind, pg in _PG_TYPES if isinstance(base, kind)), None)
        if pg is None or (isinstance(base, sa.DateTime) and not base.timezone):
            return None
        if isinstance(column.type, UtcDateTime):
            # timestamptz keeps the instant whatever the zone: only a naive time is refused
            # (UtcDateTime's conversion to UTC was ~10% of the COPY's client CPU).
            found.append((pg, _aware))
            continue
        found.append((pg, impl.bind_processor(dialect)))
    return tuple(found)


_PG_TYPES: tuple[tuple[type[Any], str], ...] = (
    (sa.BigInteger, "int8"),
    (sa.Integer, "int4"),
    (sa.Boolean, "bool"),
    (sa.Float, "float8"),
    (sa.DateTime, "timestamptz"),
    (sa.Text, "text"),
    (sa.String, "varchar"),
)


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime: every stored time must carry a time zone")
    return value


def refuse_naive(times: Iterable[datetime | None]) -> None:
    """ValueError for a naive time among ``times``: what UtcDateTime refuses, for the
    statements sent as arrays, which bypass it (PostgreSQL would read the time as UTC)."""
    for at in times:
        if at is not None:
            _aware(at)


def sqlite_utc_text(value: datetime) -> str:
    """The text UtcDateTime and SQLite's DATETIME make of an aware time (UTC, always six
    digits of microseconds), in one C call instead of three Python ones: ~40% of the
    intake's storage CPU on SQLite was converting times."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: every stored time must carry a time zone")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _converted(convert: Convert, values: list[Any]) -> list[Any]:
    return values if convert is None else [None if value is None else convert(value) for value in values]


@functools.lru_cache(maxsize=256)
def _prepared(dialect: Dialect, table: sa.Table, names: tuple[str, ...]) -> tuple[str, list[Convert]]:
    """The statement for these columns and each column's value converter (built once)."""
    columns = [table.c[name] for name in names]
    quote = dialect.identifier_preparer.quote
    target = f"{quote(table.name)} ({', '.join(quote(name) for name in names)})"
    if dialect.name == "postgresql":
        arrays, selected = [], []
        for i, column in enumerate(columns):
            if _is_json(column, dialect):  # sent as text, parsed by the server
                arrays.append("%b::text[]")
                selected.append(f"c{i}::jsonb")
            else:
                arrays.append(f"%b::{column.type.compile(dialect=dialect)}[]")
                selected.append(f"c{i}")
        aliases = ", ".join(f"c{i}" for i in range(len(columns)))
        statement = (
            f"INSERT INTO {target} SELECT {', '.join(selected)} "
            f"FROM unnest({', '.join(arrays)}) AS u({aliases})"
        )
    else:
        placeholders = ", ".join("?" for _ in columns)
        statement = f"INSERT INTO {target} VALUES ({placeholders})"
    return statement, [_converter(column, dialect) for column in columns]


def _is_json(column: sa.Column[Any], dialect: Dialect) -> bool:
    return isinstance(column.type.dialect_impl(dialect), sa.JSON)


def _converter(column: sa.Column[Any], dialect: Dialect) -> Convert:
    """What SQLAlchemy would do to a value of this column before handing it to the driver."""
    if _is_json(column, dialect):
        return json_text
    if dialect.name == "sqlite" and isinstance(column.type, UtcDateTime):
        return sqlite_utc_text
    # The dialect's own type: the generic DateTime renders a whole second without ".000000" on
    # SQLite, and then compares below the same time bound as a query parameter.
    processor: Convert = column.type.dialect_impl(dialect).bind_processor(dialect)
    return processor


def chunks(items: list[str], size: int = 500) -> list[list[str]]:
    """Keep IN lists within every backend's parameter limits."""
    return [items[i : i + size] for i in range(0, len(items), size)]
