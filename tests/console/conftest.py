"""The console on real parts: the API's test world (tests/api/conftest.py: a migrated
database with the samples' orders, a commands topic on the real broker, the worker's
command handler consuming it) with the console mounted, and one account per role."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from tests.api.conftest import REPO_ROOT, SENDERS, ApiWorld, api_world
from workorder_pipeline.api.console.access import ApiAccess
from workorder_pipeline.api.console.session import ConsoleParts
from workorder_pipeline.schemas.officers import OfficerRole
from workorder_pipeline.services.clock import utc_now
from workorder_pipeline.services.figure_snapshots import FigureSnapshots
from workorder_pipeline.services.officers import Officers
from workorder_pipeline.services.policy_set import load_policy_set
from workorder_pipeline.storage.figures_read import FigureFacts
from workorder_pipeline.storage.officer_store import OfficerStore
from workorder_pipeline.wo.kafka_cluster import KafkaCluster

PASSWORD = "长城-correct-horse-7"
#: Argon2id at a test's cost: the same algorithm, less memory and time.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
LOADED = load_policy_set(REPO_ROOT / "policy")
#: Where the console says the API's tokens come from (the test world's are in memory).
TOKENS_FILE = Path("/etc/wo/api-tokens.yaml")


@dataclass(frozen=True)
class Account:
    certificate_no: str
    name: str
    unit: str
    role: OfficerRole


#: One account per role (and a second officer of squad-1: the colleague of field actions).
ACCOUNTS = {
    "squad-1": Account("JS0682-0117", "王强", "squad-1", OfficerRole.officer),
    "squad-1-leader": Account("JS0682-0342", "赵敏", "squad-1", OfficerRole.squad_leader),
    "squad-2": Account("JS0683-0001", "李娜", "squad-2", OfficerRole.officer),
    "duty": Account("ZH-0001", "陈刚", "command-center", OfficerRole.duty_officer),
    "duty-2": Account("ZH-0002", "吴军", "command-center", OfficerRole.duty_officer),
    "supervisor": Account("DC-0001", "孙丽", "command-center", OfficerRole.supervisor),
    "admin": Account("GL-0001", "周涛", "command-center", OfficerRole.administrator),
}


@dataclass
class ConsoleWorld:
    api: ApiWorld
    officers: Officers

    def client(self) -> TestClient:
        """A browser of its own (its own cookies), signed in to nothing."""
        return TestClient(self.api.app, follow_redirects=False)

    def signed_in(self, who: str) -> TestClient:
        client = self.client()
        response = sign_in(client, ACCOUNTS[who].certificate_no, PASSWORD)
        assert response.status_code == 303, response.text
        return client


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(client: TestClient, certificate_no: str, password: str) -> httpx.Response:
    token = csrf_of(client.get("/console/login").text)
    response: httpx.Response = client.post(
        "/console/login", data={"certificate_no": certificate_no, "password": password, "csrf_token": token}
    )
    return response


def _console(engine: Engine) -> ConsoleParts:
    officers = Officers(OfficerStore(engine), FAST_HASHER)
    now = datetime.now(UTC)
    for account in ACCOUNTS.values():
        officers.add(account.certificate_no, account.name, account.unit, account.role, PASSWORD, now)
    # Read on every page (no age): the tests look at figures right after changing orders.
    figures = FigureSnapshots(FigureFacts(engine), LOADED.policy.figures.score, utc_now, refresh_seconds=0)
    access = ApiAccess(TOKENS_FILE, REPO_ROOT / "policy", SENDERS)
    return ConsoleParts(officers, LOADED.policy, LOADED.calendar, utc_now, figures, access)


@pytest.fixture
def console(
    kafka_broker: KafkaCluster, database_url: str, request: pytest.FixtureRequest
) -> Iterator[ConsoleWorld]:
    """The console's world on SQLite, then on PostgreSQL."""
    with api_world(kafka_broker.bootstrap, database_url, request.node.name, console=_console) as world:
        yield ConsoleWorld(world, world.app.state.console.officers)
        assert not world.consumer.errors, f"the command handler failed: {world.consumer.errors!r}"
