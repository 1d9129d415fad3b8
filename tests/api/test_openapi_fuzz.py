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

import json
import re
from collections import Counter
from typing import Any
from urllib.parse import quote

import httpx
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

from tests.api.conftest import ApiWorld, api_world, documented_operations, openapi_document
from workorder_pipeline.api.guard import AuthFailures
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.wo.embedded_broker import EmbeddedBroker

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


# --- a crawler with hostile values, every route, every role, both databases ------------------

ROLES = ("squad-1", "squad-2", "command_center", "supervisor", None)
#: The longest URL the HTTP client sends (httpx: 64 KB); uvicorn refuses longer lines anyway.
LONG_IN_URL = "y" * 60_000
#: Text no route may answer 5xx to, in a path or a query parameter.
HOSTILE_TEXT = [
    "\x00",
    "WO-\x00-1",
    "x" * 5000,
    LONG_IN_URL,
    "9" * 40,  # an integer beyond 64 bits, as text
    str(10**40),
    "-1",
    "-9223372036854775809",
    "true",
    "1e999",
    "NaN",
    " ",
    "ＷＯ－全角",
    "../../etc/passwd",
    "%00",
    "\u202e\ufeff",
]
#: Percent-escapes that are not UTF-8 (a lone byte, a surrogate, a cut sequence), sent as is.
RAW_ESCAPES = ["%FF%FE", "%ED%A0%80", "%C3", "WO-%C0%AF"]
#: Values distinctive enough that finding them in an answer means they were said back.
ECHOED_IF_FOUND = [
    "x" * 5000,
    LONG_IN_URL,
    "9" * 40,
    str(10**40),
    "-9223372036854775809",
    "../../etc/passwd",
    "ＷＯ－全角",
    "z" * 100_000,
]
CHINESE = re.compile(r"[\u4e00-\u9fff]")
DEEP: Any = [[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]
#: JSON values no body field may make the API answer 5xx to.
HOSTILE_JSON: list[Any] = [
    "\x00",
    "ok\x00",
    10**20,
    -(10**20),
    10**40,
    -1,
    "z" * 100_000,  # the body passes the API's 64 KB: 413
    2**63,
    True,
    3.5,
    "3",
    "x" * 5000,
    [],
    {},
    {"\x00": 1},
    DEEP,
    None,
]


def body_fields(document: dict[str, Any], method: str, path: str) -> list[str]:
    """Top-level fields of the operation's JSON body (none: no body)."""
    operation = document["paths"][path][method.lower()]
    if "requestBody" not in operation:
        return []
    ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return sorted(document["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"])


def crawl(world: ApiWorld, order_id: str) -> Counter[int]:
    """Every operation of the document, as every role, with each hostile value in turn in
    each path parameter, query parameter and body field (the others valid); the status
    codes answered, counted."""
    client = TestClient(world.app, raise_server_exceptions=False)
    statuses: Counter[int] = Counter()
    valid_path = {"order_id": order_id, "command_id": "never-sent", "month": "2026-11"}
    for method, path in documented_operations(DOCUMENT):
        operation = DOCUMENT["paths"][path][method.lower()]
        parameters = [(p["name"], p["in"]) for p in operation.get("parameters", [])]
        fields = body_fields(DOCUMENT, method, path)
        base_body = {"action": "accept"} if fields else None
        requests: list[tuple[dict[str, str], dict[str, str], Any]] = []
        for name, where in parameters:
            for text in [*HOSTILE_TEXT, *RAW_ESCAPES]:
                path_values = {**valid_path, name: text} if where == "path" else valid_path
                requests.append((path_values, {name: text} if where == "query" else {}, base_body))
        for name in fields:
            requests += [(valid_path, {}, {**(base_body or {}), name: value}) for value in HOSTILE_JSON]
        requests += [(valid_path, {}, value) for value in HOSTILE_JSON if fields]
        for who in ROLES:
            headers = world.headers(who) if who else {}
            for path_values, query, body in requests:
                url = path.format(**{k: _in_url(v) for k, v in path_values.items()})
                if query:
                    url += "?" + "&".join(f"{k}={_in_url(v)}" for k, v in query.items())
                content = json.dumps(body).encode() if body is not None or fields else None
                response = client.request(
                    method,
                    url,
                    content=content,
                    headers={**headers, "Content-Type": "application/json"} if content else headers,
                )
                statuses[response.status_code] += 1
                if who is None:  # else the address is slowed down and the rest is only 429s
                    world.app.state.auth_failures = AuthFailures()
                assert_refused_in_chinese(response, f"{method} {url:.300} {body!r:.200} as {who}")
    return statuses


def _in_url(value: str) -> str:
    return value if value in RAW_ESCAPES else quote(value, safe="")


def assert_refused_in_chinese(response: httpx.Response, request: str) -> None:
    """No 5xx; a refusal (JSON ``detail``) says in Chinese what is wrong and quotes nothing
    that was sent (the documented ``command_id`` of an answer about a command aside)."""
    assert response.status_code < 500, f"{request}: {response.text:.500}"
    if response.status_code < 400 or not response.headers["content-type"].startswith("application/json"):
        return
    body = response.json()
    if isinstance(body, dict) and "command_id" in body:
        # The API's own answers about a command; a verdict's reason is the worker's (English).
        own = body["outcome"] in ("unknown_command", "command_id_reused")
        body = {key: value for key, value in body.items() if key != "command_id"}
        words = [body["reason"]] if own else []
    else:
        detail = body["detail"]
        if isinstance(detail, list):
            words = [entry["msg"] for entry in detail]
        else:
            words = [detail["message"] if isinstance(detail, dict) else detail]
    assert all(CHINESE.search(text) for text in words), f"{request}: not in Chinese: {body}"
    said = json.dumps(body, ensure_ascii=False)
    assert "\x00" not in said and "\\u0000" not in said, f"{request}: U+0000 said back"
    for value in ECHOED_IF_FOUND:
        assert value not in said, f"{request}: the value sent was said back: {said:.300}"


def test_no_route_answers_5xx_to_hostile_values_as_any_role(
    kafka_broker: EmbeddedBroker, database_url: str
) -> None:
    with api_world(kafka_broker.bootstrap, database_url, "hostile-crawler") as world:
        order = world.claim("squad-1")
        statuses = crawl(world, order.id)
        assert not world.consumer.errors, world.consumer.errors
    total = sum(statuses.values())
    where = database_url.split(":")[0]
    print(f"hostile crawler on {where}: {total} requests, statuses {dict(sorted(statuses.items()))}")
    assert total > 1000
    assert statuses[422] > 0 and statuses[404] > 0 and statuses[401] > 0 and statuses[403] > 0


@pytest.mark.parametrize(
    ("method", "path", "who", "kwargs", "status"),
    [
        pytest.param("GET", "/orders/WO%00X", "command_center", {}, 422, id="order-id-u0000"),
        pytest.param("GET", "/orders/" + "x" * 5000, "command_center", {}, 404, id="order-id-long"),
        pytest.param("GET", "/orders/" + "9" * 40, "command_center", {}, 404, id="order-id-huge-int"),
        pytest.param("GET", "/orders/WO%00X/complainant", "squad-1", {}, 422, id="complainant-u0000"),
        pytest.param(
            "GET", "/orders", "command_center", {"params": {"unit": "squad\x00"}}, 422, id="unit-u0000"
        ),
        pytest.param(
            "GET", "/orders", "squad-1", {"params": {"unit": "squad-1\x00"}}, 422, id="own-unit-u0000"
        ),
        pytest.param(
            "GET", "/orders", "command_center", {"params": {"limit": "9" * 30}}, 422, id="limit-huge"
        ),
        pytest.param("GET", "/orders", "command_center", {"params": {"limit": "true"}}, 422, id="limit-bool"),
        pytest.param("GET", "/orders", "command_center", {"params": {"overdue": "maybe"}}, 422, id="overdue"),
        pytest.param("GET", "/commands/c%00", "squad-1", {}, 422, id="command-id-u0000"),
        pytest.param("GET", "/commands/" + "9" * 40, "squad-1", {}, 404, id="command-id-unknown"),
    ],
)
def test_hostile_values_in_urls_are_422_or_404(
    api: ApiWorld, method: str, path: str, who: str, kwargs: dict[str, Any], status: int
) -> None:
    client = TestClient(api.app, raise_server_exceptions=False)
    response = client.request(method, path, headers=api.headers(who), **kwargs)
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        pytest.param({"action": "accept", "note": "done\x00"}, "invalid_character", id="note-u0000"),
        pytest.param({"action": "accept", "command_id": "c\x00"}, "invalid_character", id="command-id-u0000"),
        pytest.param(
            {"action": "accept", "officer_ids": ["JS\x00"]}, "invalid_character", id="officer-u0000"
        ),
        pytest.param({"action": "accept", "note": 10**20}, "", id="note-huge-int"),
        pytest.param({"action": "accept", "command_id": 10**20}, "", id="command-id-huge-int"),
        pytest.param({"action": "accept", "note": True}, "", id="note-bool"),
        pytest.param({"action": "accept", "note": "x" * 5000}, "", id="note-long"),
        pytest.param({"action": "accept", "command_id": "c" * 200}, "", id="command-id-long"),
        pytest.param(
            {
                "action": "close",
                "callback": {"result": "unreachable", "at": "2026-11-21T09:12:44+08:00", "attempts": "3"},
            },
            "invalid_field",
            id="attempts-as-text",
        ),
        pytest.param({"action": "accept", "at": 1732600000}, "", id="time-as-number"),
    ],
)
def test_hostile_values_in_a_command_body_are_422_and_nothing_is_sent(
    api: ApiWorld, body: dict[str, Any], kind: str
) -> None:
    order = api.orders()[0]
    before = api.topic_end_offsets()
    client = TestClient(api.app, raise_server_exceptions=False)
    response = client.post(
        f"/orders/{order.id}/commands",
        content=json.dumps(body).encode(),
        headers={**api.headers("command_center"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    if kind:
        assert [error["type"] for error in response.json()["detail"]] == [kind]
    assert api.topic_end_offsets() == before, "a refused command reached the commands topic"
