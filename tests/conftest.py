"""Shared fixtures: Apache Kafka and the embedded broker, and SQLite / PostgreSQL database URLs.

``kafka_broker`` is Apache Kafka (KRaft, one node), the broker production runs: the
integration, end-to-end, crash and outage tests use it. ``tansu_broker`` is the embedded
broker of ``bin/wo run``, for the tests of what only it does (or does differently).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import psycopg
import pytest
from psycopg import sql

if TYPE_CHECKING:
    # Imported lazily below: unit tests should not pay for importing kafka-python.
    from workorder_pipeline.wo.embedded_broker import EmbeddedBroker
    from workorder_pipeline.wo.kafka_cluster import KafkaCluster

#: Our folders, importable by these bare names from the checkout (on sys.path under pytest):
#: only ever imported as workorder_pipeline.<name> (see _no_module_of_ours_under_a_bare_name).
BARE_NAMES = ("api", "config", "processors", "schemas", "services", "storage", "streams", "wo")
CHECKOUT = Path(__file__).resolve().parents[1]

POSTGRES_HOST = "127.0.0.1"
# bin/test starts a server there (bin/_postgres.sh) and says which port.
POSTGRES_PORT = int(os.environ.get("WO_TEST_POSTGRES_PORT", "5432"))
POSTGRES_USER = "postgres"
POSTGRES_ADMIN_DSN = (
    f"host={POSTGRES_HOST} port={POSTGRES_PORT} user={POSTGRES_USER} dbname=postgres connect_timeout=3"
)


def skip_unless_ci(reason: str) -> NoReturn:
    """A test's outside requirement is missing: skipped with the reason on a laptop, a
    failure under ``CI=true``, where no test may be skipped silently."""
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{reason} (CI=true: this test must run, not be skipped)")
    pytest.skip(reason)


def require_java_and_maven() -> None:
    """Apache Kafka comes from Maven Central and runs on Java: without them the test is
    skipped with the reason, except under ``CI=true``, where it fails."""
    import shutil

    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if missing:
        skip_unless_ci(f"Apache Kafka needs {' and '.join(missing)} on PATH")


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """Apache Kafka, one KRaft node on free 127.0.0.1 ports, for the whole session (``.bootstrap``).

    Needs Java 17 and Maven (the broker comes from Maven Central, ``deploy/kafka/pom.xml``).
    Without them the test is skipped with the reason, except under ``CI=true``, where it
    fails. Topics are not auto-created: give each test its own topic names and create them.
    """

    from workorder_pipeline.wo.kafka_cluster import KafkaCluster

    require_java_and_maven()
    with KafkaCluster(tmp_path_factory.mktemp("kafka"), brokers=1) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def tansu_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """The embedded broker (Tansu) on a free 127.0.0.1 port for the whole session (``.bootstrap``).

    Its data lives in memory: give each test its own topic names.
    """
    from workorder_pipeline.wo.embedded_broker import EmbeddedBroker

    log_path = tmp_path_factory.mktemp("tansu") / "broker.log"
    with EmbeddedBroker(log_path=log_path) as broker:
        yield broker


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, uniquely named PostgreSQL database, dropped afterwards.

    Skips when the server at 127.0.0.1:$WO_TEST_POSTGRES_PORT (5432) is unreachable, except under ``CI=true``,
    where it fails: CI must never silently skip the PostgreSQL tests.
    """
    name = f"wo_test_{uuid.uuid4().hex[:16]}"
    try:
        admin = psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True)
    except psycopg.OperationalError as exc:
        skip_unless_ci(f"PostgreSQL not reachable at {POSTGRES_HOST}:{POSTGRES_PORT}: {exc}".strip())
    try:
        with admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        yield f"postgresql+psycopg://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file in the test's temporary directory."""
    return f"sqlite:///{tmp_path}/wo.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs the test once on SQLite and once on PostgreSQL (see ``postgres_url``)."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture(autouse=True)
def _cli_leaves_logging_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test calling ``wo.cli.main`` in this process must not install the CLI's logging:
    its handler on stderr and its cached loggers would outlive the test, so a later test's
    captured logs come back empty and a stray library warning lands in another test's
    stderr. The CLI's logging itself is tested in processes of their own."""
    monkeypatch.setattr("workorder_pipeline.wo.cli.configure_logging", lambda *_args, **_kwargs: None)


@pytest.fixture(autouse=True)
def _no_module_of_ours_under_a_bare_name() -> Iterator[None]:
    """A test that loads one of our modules by its bare name (a patch target, importlib, an
    import that ruff's ban did not see) fails: that module would be a second copy, its enums
    and classes different objects from those the code under test uses."""
    yield
    loaded = [
        name
        for name in BARE_NAMES
        if (file := getattr(sys.modules.get(name), "__file__", None))
        and Path(file).resolve().is_relative_to(CHECKOUT)
    ]
    assert not loaded, f"loaded by a bare name, not as workorder_pipeline.<name>: {loaded}"
