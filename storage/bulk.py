"""Many rows in one statement: an intake batch's writes without a per-row cost.

SQLAlchemy's executemany builds and type-processes a parameter dict per row, and psycopg
then sends one prepared statement per row (~25,000 statements through its pipeline for
10,000 alarms: half of the intake's CPU on PostgreSQL). Here each column's values are
converted once, as SQLAlchemy's column types convert them, and

- PostgreSQL receives one ``INSERT ... SELECT ... FROM unnest(<one array per column>)``;
- SQLite one executemany of plain tuples (the sqlite3 module loops in C).

Only plain inserts: a duplicate key fails the statement as an ``IntegrityError``, like
SQLAlchemy's insert does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from workorder_pipeline.storage.database import json_text

Convert = Callable[[Any], Any] | None


def insert_rows(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys, values as SQLAlchemy takes them) into ``table``."""
    if not rows:
        return
    names = tuple(rows[0])
    if any(len(row) != len(names) for row in rows):
        raise ValueError(f"{table.name}: every row of one insert must name the same columns")
    statement, converters = _prepared(conn.dialect, table, names)
    columns = [_converted(converters[i], [row[name] for row in rows]) for i, name in enumerate(names)]
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(statement, tuple(columns))
    else:
        conn.exec_driver_sql(statement, list(zip(*columns, strict=True)))


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
    # The dialect's own type: the generic DateTime renders a whole second without ".000000" on
    # SQLite, and then compares below the same time bound as a query parameter.
    processor: Convert = column.type.dialect_impl(dialect).bind_processor(dialect)
    return processor


def chunks(items: list[str], size: int = 500) -> list[list[str]]:
    """Keep IN lists within every backend's parameter limits."""
    return [items[i : i + size] for i in range(0, len(items), size)]
