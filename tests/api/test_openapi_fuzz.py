"""Schemathesis against the API's own OpenAPI document, as the command center.

Every operation of the document (so a new route is fuzzed without touching this file) gets
schema-valid requests and, where it has a query or a body, schema-violating ones. Order
ids are drawn from the real orders, so commands really go through the broker and the
command handler. Checks: never a 5xx; bodies and content types as documented; invalid
input rejected with a 4xx.

``schemathesis.pytest.from_fixture`` fails under pytest 9 (it reads ``Node._nodeid``, which
pytest 9 removed), so each operation's Hypothesis strategy is run here directly.
"""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.case import Case
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema

from schemas.signal import SignalKind
from tests.api.conftest import ApiWorld, documented_operations, openapi_document

pytestmark = pytest.mark.integration

DOCUMENT = openapi_document()
POSITIVE = schemathesis.GenerationMode.POSITIVE
NEGATIVE = schemathesis.GenerationMode.NEGATIVE
MAX_EXAMPLES = 40


def _has_inputs_to_break(method: str, path: str) -> bool:
    """Negative cases need something besides the (fixed) path parameters and headers."""
    operation = DOCUMENT["paths"][path][method.lower()]
    parameters = operation.get("parameters", [])
    return "requestBody" in operation or any(p["in"] == "query" for p in parameters)


FUZZ_CASES = [
    pytest.param(method, path, mode, id=f"{method} {path} {mode.value}")
    for method, path in documented_operations(DOCUMENT)
    for mode in (POSITIVE, NEGATIVE)
    if mode is POSITIVE or _has_inputs_to_break(method, path)
]


@pytest.fixture(scope="module")
def api_schema(api: ApiWorld) -> OpenApiSchema:
    assert api.app.openapi() == DOCUMENT
    return schemathesis.openapi.from_asgi("/openapi.json", api.app)


@pytest.mark.parametrize(("method", "path", "mode"), FUZZ_CASES)
def test_no_operation_answers_a_server_error(
    api: ApiWorld,
    api_schema: OpenApiSchema,
    method: str,
    path: str,
    mode: schemathesis.GenerationMode,
) -> None:
    operation = api_schema.find_operation_by_path(method, path)
    assert operation is not None, f"{method} {path} is in the document but schemathesis did not load it"
    headers = api.headers("command_center")
    order_ids = [*sorted(order.id for order in api.orders()), "WO-NO-SUCH-ORDER"]
    strategy: st.SearchStrategy[Case[Any]]
    if "{order_id}" in path:
        strategy = st.sampled_from(order_ids).flatmap(
            lambda order_id: operation.as_strategy(
                mode, path_parameters={"order_id": order_id}, headers=headers
            )
        )
    else:
        strategy = operation.as_strategy(mode, headers=headers)
    checks = [not_a_server_error, content_type_conformance, response_schema_conformance]
    if mode is NEGATIVE:
        checks.append(negative_data_rejection)

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,  # no .hypothesis directory in the repository
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    @hypothesis.given(case=strategy)
    def fuzz(case: Case[Any]) -> None:
        case.call_and_validate(headers=headers, checks=checks)

    fuzz()


@pytest.mark.parametrize(
    ("method", "path", "request_kwargs"),
    [
        pytest.param("GET", "/orders", {"params": {"created_from": "0001-01-01T00:00:00+01:00"}}, id="query"),
        pytest.param(
            "POST",
            "/orders/{order_id}/commands",
            {"json": {"action": "extend", "note": "x", "new_due_at": "9999-12-31T23:59:59-01:00"}},
            id="body",
        ),
    ],
)
def test_an_out_of_range_time_is_422(
    api: ApiWorld, method: str, path: str, request_kwargs: dict[str, Any]
) -> None:
    order_id = api.orders()[0].id
    client = TestClient(api.app, raise_server_exceptions=False)  # see the status, not the exception
    response = client.request(
        method, path.format(order_id=order_id), headers=api.headers("command_center"), **request_kwargs
    )
    assert response.status_code == 422, response.text


def test_every_status_the_api_answers_is_documented(api: ApiWorld) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    order = api.claim("squad-1", SignalKind.vehicle_alarm)
    refused = api.command("squad-1", order.id, action="start")  # dispatched: 409 invalid_state
    assert refused.status_code == 409, refused.text
    calls = [
        ("GET", "/orders", "squad-1", {"unit": "squad-2"}),
        ("GET", "/orders/{order_id}", "command_center", {"order_id": "WO-NO-SUCH-ORDER"}),
        ("GET", "/orders/{order_id}", "squad-2", {"order_id": order.id}),
        ("GET", "/orders/{order_id}/complainant", "supervisor", {"order_id": order.id}),
        ("GET", "/orders/{order_id}/complainant", "command_center", {"order_id": order.id}),
        ("GET", "/commands/{command_id}", "squad-1", {"command_id": "never-sent"}),
        ("GET", "/commands/{command_id}", "squad-1", {"command_id": refused.json()["command_id"]}),
        ("GET", "/commands/{command_id}", "squad-2", {"command_id": refused.json()["command_id"]}),
        ("GET", "/orders", None, {}),
    ]
    undocumented = []
    for method, path, who, values in calls:
        operation = schema.find_operation_by_path(method, path)
        assert operation is not None
        query = values if "{" not in path else {}
        case = operation.Case(path_parameters=values if "{" in path else {}, query=query)
        response = case.call(headers=api.headers(who) if who else {})
        try:
            case.validate_response(response, checks=[status_code_conformance])
        except FailureGroup:
            undocumented.append(f"{method} {path} as {who}: {response.status_code}")
    assert not undocumented, "\n".join(undocumented)
