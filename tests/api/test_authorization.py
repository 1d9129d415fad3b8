"""Who may call what: every route of the API, discovered from the app itself.

The operations come from the app's OpenAPI document and the routes from ``app.routes``,
so a route added later is covered (or the test says what it needs to cover it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Route

from tests.api.conftest import OFFICERS, SAMPLES, ApiWorld, documented_operations, openapi_document
from tests.api.test_dead_letter_originals import rejected_complaint
from workorder_pipeline.api.auth import hash_token, new_token
from workorder_pipeline.schemas.signal import SignalKind

pytestmark = pytest.mark.integration

DOCUMENT = openapi_document()
OPERATIONS = documented_operations(DOCUMENT)
#: Routes outside the OpenAPI document, deliberately open: the health probe and the docs.
PUBLIC_ROUTES = {"/healthz", "/openapi.json", "/docs"}
#: A body for each operation that takes one (harmless: squad-1's order is already accepted).
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/orders/{order_id}/commands"): {"action": "accept", "officer_ids": OFFICERS},
}


def op_id(operation: tuple[str, str]) -> str:
    return f"{operation[0]} {operation[1]}"


def about_an_order(operation: tuple[str, str]) -> bool:
    """A path naming an order or command, or a list that can be asked for a unit's orders."""
    method, template = operation
    if re.search(r"{\w+}", template):
        return True
    parameters = DOCUMENT["paths"][template][method.lower()].get("parameters", [])
    return any(p["name"] == "unit" and p["in"] == "query" for p in parameters)


#: Operations about orders: every one must refuse another squad.
ORDER_OPERATIONS = [operation for operation in OPERATIONS if about_an_order(operation)]


@dataclass(frozen=True)
class Squad1Resources:
    """A squad-1 complaint, a command squad-1 sent about it and a masked dead letter's
    original (their path parameter values)."""

    order_id: str
    command_id: str
    dead_letter_id: str

    @property
    def path_values(self) -> dict[str, str]:
        return {
            "order_id": self.order_id,
            "command_id": self.command_id,
            "dead_letter_id": self.dead_letter_id,
            "month": "2026-11",
        }


@pytest.fixture(scope="module")
def squad1(api: ApiWorld) -> Squad1Resources:
    order = api.claim("squad-1", SignalKind.complaint)
    accepted = api.command("squad-1", order.id, action="accept")
    assert accepted.status_code == 200, accepted.text
    letter, _ = rejected_complaint(api, 800_001)
    assert letter.original_id is not None
    return Squad1Resources(order.id, accepted.json()["command_id"], letter.original_id)


def call(
    api: ApiWorld, operation: tuple[str, str], values: dict[str, str], headers: dict[str, str]
) -> httpx.Response:
    """The operation with its path parameters from ``values`` (and its sample body)."""
    method, template = operation
    names = re.findall(r"{(\w+)}", template)
    missing = [name for name in names if name not in values]
    assert not missing, f"{op_id(operation)}: give the test a value for path parameter(s) {missing}"
    spec = DOCUMENT["paths"][template][method.lower()]
    body = BODIES.get(operation)
    assert body is not None or "requestBody" not in spec, f"{op_id(operation)}: add a sample body to BODIES"
    path = template.format(**{name: values[name] for name in names})
    response: httpx.Response = api.client.request(method, path, json=body, headers=headers)
    return response


@pytest.fixture
def unchanged(api: ApiWorld) -> Iterator[None]:
    """Nothing in the database and nothing on the commands topic may change during the test."""
    rows, offsets = api.snapshot(), api.topic_end_offsets()
    yield
    assert api.snapshot() == rows, "the database changed"
    assert api.topic_end_offsets() == offsets, "a command was published"


# --- every route -----------------------------------------------------------------------------


def test_every_route_is_in_the_openapi_document_or_deliberately_public(api: ApiWorld) -> None:
    assert api.app.openapi() == DOCUMENT
    documented = {path for _, path in OPERATIONS}
    routes = {route.path for route in api.app.routes if isinstance(route, Route | APIRoute)}
    assert routes - documented - PUBLIC_ROUTES == set(), "a route the authorization tests do not walk"
    assert {"/orders", "/orders/{order_id}", "/orders/{order_id}/complainant"} <= documented
    assert {"/orders/{order_id}/commands", "/commands/{command_id}"} <= documented


def test_the_health_probe_needs_no_token(api: ApiWorld) -> None:
    response = api.client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.parametrize("operation", OPERATIONS, ids=op_id)
def test_no_token_is_401(
    api: ApiWorld, squad1: Squad1Resources, unchanged: None, operation: tuple[str, str]
) -> None:
    response = call(api, operation, squad1.path_values, headers={})
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"


def _bad_credentials(api: ApiWorld) -> dict[str, str]:
    squad_1 = api.tokens["squad-1"]
    return {
        "an unknown token": f"Bearer {new_token()}",
        "the token's hash (a leaked tokens file)": f"Bearer {hash_token(squad_1)}",
        "a valid token, cut short": f"Bearer {squad_1[:-1]}",
        "a valid token in another scheme": f"Basic {squad_1}",
        "a valid token without a scheme": squad_1,
        "an empty bearer token": "Bearer ",
    }


@pytest.mark.parametrize("operation", OPERATIONS, ids=op_id)
def test_an_invalid_token_is_401(
    api: ApiWorld, squad1: Squad1Resources, unchanged: None, operation: tuple[str, str]
) -> None:
    for what, authorization in _bad_credentials(api).items():
        response = call(api, operation, squad1.path_values, headers={"Authorization": authorization})
        assert response.status_code == 401, f"{what}: {response.status_code} {response.text}"


# --- a squad and another squad's orders ------------------------------------------------------


@pytest.mark.parametrize("operation", ORDER_OPERATIONS, ids=op_id)
def test_another_squad_is_refused_every_route_about_squad_1s_orders(
    api: ApiWorld, squad1: Squad1Resources, unchanged: None, operation: tuple[str, str]
) -> None:
    """An order or command of another unit answers exactly as one that does not exist (no
    existence oracle); a list asked for another unit is 403."""
    method, template = operation
    if re.search(r"{\w+}", template):
        response = call(api, operation, squad1.path_values, api.headers("squad-2"))
        missing = {name: f"{value}-NOSUCH" for name, value in squad1.path_values.items()}
        absent = call(api, operation, missing, api.headers("squad-2"))
        assert response.status_code == absent.status_code, (response.text, absent.text)
        seen, unknown = response.text, absent.text
        for value in squad1.path_values.values():
            seen, unknown = seen.replace(value, "X"), unknown.replace(f"{value}-NOSUCH", "X")
        assert seen == unknown
        assert response.json().get("order") is None, "no order data"
    else:
        response = api.client.request(
            method, template, params={"unit": "squad-1"}, headers=api.headers("squad-2")
        )
        assert response.status_code == 403, response.text
        assert set(response.json()) == {"detail"}, "only the refusal, no order data"


def test_a_squad_lists_and_reads_only_its_own_orders(api: ApiWorld, squad1: Squad1Resources) -> None:
    everything = api.orders()
    own = sorted(o.id for o in everything if o.unit == "squad-1" or "squad-1" in o.copied_to)
    assert own and len(own) < len(everything)
    for params in ({}, {"unit": "squad-1"}):
        response = api.client.get("/orders", params={**params, "limit": 500}, headers=api.headers("squad-1"))
        assert response.status_code == 200, response.text
        assert sorted(o["id"] for o in response.json()) == own
    shown = api.client.get(f"/orders/{squad1.order_id}", headers=api.headers("squad-1"))
    assert shown.status_code == 200
    assert shown.json()["order"]["unit"] == "squad-1"
    command = api.client.get(f"/commands/{squad1.command_id}", headers=api.headers("squad-1"))
    assert (command.status_code, command.json()["outcome"]) == (200, "applied")


def test_a_command_id_of_another_squad_does_not_reveal_its_order(
    api: ApiWorld, squad1: Squad1Resources
) -> None:
    own = api.claim("squad-2")
    before = api.snapshot()
    response = api.command("squad-2", own.id, command_id=squad1.command_id, action="accept")
    assert api.snapshot() == before
    order = api.repository.get(squad1.order_id)
    assert order is not None and order.summary not in response.text, response.text
    assert squad1.order_id not in response.text, response.text
    assert (response.status_code, response.json()["outcome"]) == (409, "command_id_reused"), response.text


# --- supervisors -----------------------------------------------------------------------------


def test_a_supervisor_lists_and_reads_every_order(api: ApiWorld, squad1: Squad1Resources) -> None:
    everything = sorted(o.id for o in api.orders())
    listed = api.client.get("/orders", params={"limit": 500}, headers=api.headers("supervisor"))
    assert listed.status_code == 200
    assert sorted(o["id"] for o in listed.json()) == everything
    units = {o["unit"] for o in listed.json()}
    assert {"squad-1", "squad-2", "command-center"} <= units
    for order_id in everything:
        shown = api.client.get(f"/orders/{order_id}", headers=api.headers("supervisor"))
        assert shown.status_code == 200, f"{order_id}: {shown.text}"
        assert shown.json()["order"]["id"] == order_id
        assert [e["type"] for e in shown.json()["history"]][:2] == ["registered", "dispatched"]
    command = api.client.get(f"/commands/{squad1.command_id}", headers=api.headers("supervisor"))
    assert (command.status_code, command.json()["outcome"]) == (200, "applied")


def test_a_supervisor_sends_no_command(api: ApiWorld, unchanged: None) -> None:
    for order in api.orders():
        response = api.command("supervisor", order.id, action="accept")
        assert response.status_code == 403, f"{order.id}: {response.text}"


def test_a_supervisor_reads_no_complainant(api: ApiWorld, squad1: Squad1Resources, unchanged: None) -> None:
    for order in api.orders():
        if order.kind is SignalKind.complaint:
            response = api.client.get(f"/orders/{order.id}/complainant", headers=api.headers("supervisor"))
            assert response.status_code == 403, f"{order.id}: {response.text}"
            assert "phone" not in response.text


# --- the command center ----------------------------------------------------------------------


def _complainants() -> dict[str, dict[str, Any]]:
    """Ticket id -> complainant, from the sample file."""
    lines = (SAMPLES / "complaints.jsonl").read_text(encoding="utf-8").splitlines()
    return {t["ticket_id"]: t["complainant"] for t in map(json.loads, filter(None, lines))}


def test_the_command_center_reads_every_order_and_every_complainant(api: ApiWorld) -> None:
    expected = _complainants()
    complaints = 0
    for order in api.orders():
        shown = api.client.get(f"/orders/{order.id}", headers=api.headers("command_center"))
        assert shown.status_code == 200, f"{order.id}: {shown.text}"
        complainant = api.client.get(f"/orders/{order.id}/complainant", headers=api.headers("command_center"))
        if order.kind is SignalKind.complaint:
            complaints += 1
            ticket = order.source_ids[0].split("/", 1)[1]
            assert complainant.status_code == 200, complainant.text
            assert complainant.json() == expected[ticket]
        else:
            assert complainant.status_code == 404, complainant.text
    assert complaints == len(expected)


def test_a_squad_reads_the_complainant_of_its_own_complaint(api: ApiWorld, squad1: Squad1Resources) -> None:
    response = api.client.get(f"/orders/{squad1.order_id}/complainant", headers=api.headers("squad-1"))
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"name", "phone"}
    assert response.json()["phone"]


def test_a_unit_reads_an_order_copied_to_it_but_not_the_complainant_and_cannot_act(
    api: ApiWorld,
) -> None:
    copied = next((o for o in api.orders() if o.copied_to), None)
    assert copied is not None, "the samples make an order copied to another unit (抄送)"
    reader = copied.copied_to[0]
    assert reader != copied.unit
    shown = api.client.get(f"/orders/{copied.id}", headers=api.headers(reader))
    assert shown.status_code == 200, shown.text
    listed = api.client.get("/orders", params={"limit": 500}, headers=api.headers(reader))
    assert copied.id in {o["id"] for o in listed.json()}
    if copied.kind.value == "complaint":
        personal = api.client.get(f"/orders/{copied.id}/complainant", headers=api.headers(reader))
        assert personal.status_code == 403
    acted = api.command(reader, copied.id, action="accept")
    assert acted.status_code == 403, acted.text
    after = api.repository.get(copied.id)
    assert after is not None and (after.status, after.unit) == (copied.status, copied.unit)
