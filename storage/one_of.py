"""``column IN (list parameter)``, one statement text whatever the list's length.

SQLAlchemy renders a list parameter as one placeholder per value at each execution
(``IN (%(keys_1)s, %(keys_2)s, ...)``), so PostgreSQL's driver parses a new statement text
for every batch (~2,000 placeholders per intake batch). On PostgreSQL this renders
``column = ANY(%(keys)s)`` with the list sent as one array; elsewhere the usual ``IN``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal


class OneOf(sa.ColumnElement[bool]):
    """True where ``column`` equals one of the values of the list parameter ``name``."""

    __visit_name__ = "one_of"
    inherit_cache = True
    type = sa.Boolean()
    _is_implicitly_boolean = True  # a comparison: no "= 1" around it on SQLite
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy reads it from the class)
        ("as_in", InternalTraversal.dp_clauseelement),
        ("as_any", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, column: sa.ColumnElement[Any], name: str) -> None:
        self.as_in = column.in_(sa.bindparam(name, expanding=True))
        self.as_any = column == sa.any_(sa.bindparam(name, type_=ARRAY(column.type)))


def one_of(column: sa.ColumnElement[Any], name: str) -> OneOf:
    return OneOf(column, name)


@compiles(OneOf)
def _as_in(element: OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.as_in, **kw)


@compiles(OneOf, "postgresql")
def _as_any(element: OneOf, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.as_any, **kw)
