"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

from workorder_pipeline.storage.database import create_engine, migrate


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated database (SQLite and PostgreSQL, see ``database_url``) and its engine."""
    migrate(database_url)
    engine = create_engine(database_url)
    yield engine
    engine.dispose()
