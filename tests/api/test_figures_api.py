"""``GET /figures`` on a generated month in SQLite and PostgreSQL: the command center and
supervisors read every unit's figures with their Chinese names; a unit reads none."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import FAR_FUTURE
from tests.integration import figures_month as month
from workorder_pipeline.api.app import create_app
from workorder_pipeline.api.auth import Role, TokenEntry, Tokens, hash_token, new_token
from workorder_pipeline.schemas.commands import WorkOrderCommand
from workorder_pipeline.storage.api_store import ApiStore
from workorder_pipeline.storage.database import create_engine, migrate

pytestmark = pytest.mark.integration

ROLES = {"command_center": Role.command_center, "supervisor": Role.supervisor, "squad-1": Role.unit}


class NoPublisher:
    def publish(self, command: WorkOrderCommand) -> None:
        raise AssertionError("reading figures publishes nothing")


@pytest.fixture
def world(database_url: str) -> Iterator[tuple[TestClient, dict[str, str], list[month.Story]]]:
    migrate(database_url)
    engine = create_engine(database_url)
    stories = month.generate(200, seed=21)
    month.write(engine, stories)
    tokens = {name: new_token() for name in ROLES}
    store = Tokens(
        [
            TokenEntry(
                name=name,
                role=role,
                unit=name if role is Role.unit else None,
                sha256=hash_token(tokens[name]),
                expires_at=FAR_FUTURE,
            )
            for name, role in ROLES.items()
        ]
    )
    app = create_app(ApiStore(engine), store, NoPublisher(), clock=lambda: month.NOW)
    with TestClient(app) as client:
        yield client, {name: f"Bearer {token}" for name, token in tokens.items()}, stories
    engine.dispose()


@pytest.mark.parametrize("reader", ["command_center", "supervisor"])
def test_the_command_center_and_supervisors_read_last_months_figures(
    world: tuple[TestClient, dict[str, str], list[month.Story]], reader: str
) -> None:
    client, auth, stories = world
    response = client.get(
        "/figures", params={"period": "last_month"}, headers={"Authorization": auth[reader]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["period"], body["start"], body["end"]) == (
        "2026-11",
        "2026-10-31T16:00:00Z",
        "2026-11-30T16:00:00Z",
    )
    got = {
        (row["unit"], row["kind"], f["figure"]): (f["numerator"], f["denominator"])
        for row in body["units"]
        if row["unit"] != "*" and row["kind"] is not None
        for f in row["figures"]
    }
    assert got == month.expected(stories)
    labels = {f["figure"]: f["label_zh"] for f in body["units"][0]["figures"]}
    assert labels["closed"] == "办结率" and labels["accepted_on_time"] == "按时签收率"
    for row in body["units"]:
        for figure in row["figures"]:
            assert figure["value"] is None if figure["denominator"] == 0 else 0 <= figure["value"] <= 1
    same = client.get("/figures", params={"period": "2026-11"}, headers={"Authorization": auth[reader]})
    assert same.json()["units"] == body["units"]


def test_a_unit_reads_no_figures(world: tuple[TestClient, dict[str, str], list[month.Story]]) -> None:
    client, auth, _ = world
    assert client.get("/figures", headers={"Authorization": auth["squad-1"]}).status_code == 403
    assert client.get("/figures").status_code == 401


@pytest.mark.parametrize("period", ["2026-13", "26-11", "november", "2026-1", "0000-01"])
def test_a_period_that_is_no_month_is_refused(
    world: tuple[TestClient, dict[str, str], list[month.Story]], period: str
) -> None:
    client, auth, _ = world
    response = client.get(
        "/figures", params={"period": period}, headers={"Authorization": auth["supervisor"]}
    )
    assert response.status_code == 422, response.text
    # The parameter is named and the months allowed said, in Chinese; what was sent is not quoted.
    assert response.json() == {
        "detail": [
            {
                "loc": ["query", "period"],
                "msg": "查询参数 period（统计期间）：应为 this_month、last_month 或 YYYY-MM（半角数字）",
                "type": "not_a_period",
            }
        ]
    }
