"""The API defends itself: bounded bodies, security headers, no CORS, bad tokens slowed down."""

from __future__ import annotations

from tests.api.conftest import ApiWorld
from workorder_pipeline.api.auth import new_token
from workorder_pipeline.api.guard import MAX_AUTH_FAILURES, MAX_BODY_BYTES


def test_a_body_over_the_limit_is_refused_before_it_is_read(api: ApiWorld) -> None:
    order = api.orders()[0]
    body = b'{"action": "accept", "note": "' + b"x" * MAX_BODY_BYTES + b'"}'
    response = api.client.post(
        f"/orders/{order.id}/commands",
        content=body,
        headers={**api.headers("command_center"), "Content-Type": "application/json"},
    )
    assert response.status_code == 413, response.text
    assert response.json() == {"detail": "请求正文超过 64 KB 的上限，未予受理"}


def test_a_chunked_body_without_a_length_is_refused_in_chinese(api: ApiWorld) -> None:
    order = api.orders()[0]
    response = api.client.post(
        f"/orders/{order.id}/commands",
        content=iter([b'{"action": ', b'"accept"}']),  # a generator: sent chunked, no length
        headers={**api.headers("command_center"), "Content-Type": "application/json"},
    )
    assert response.status_code == 411, response.text
    assert response.json() == {"detail": "请求须带 Content-Length（不受理分块传输的正文）"}


def test_every_answer_carries_the_security_headers_and_no_cors(api: ApiWorld) -> None:
    for path in ("/healthz", "/orders", "/docs"):
        response = api.client.get(
            path, headers={**api.headers("supervisor"), "Origin": "https://evil.example"}
        )
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "Content-Security-Policy" in response.headers
        assert "access-control-allow-origin" not in {name.lower() for name in response.headers}


def test_an_address_presenting_bad_tokens_is_slowed_down(api: ApiWorld) -> None:
    bad = {"Authorization": f"Bearer {new_token()}"}
    statuses = [api.client.get("/orders", headers=bad).status_code for _ in range(MAX_AUTH_FAILURES)]
    assert statuses == [401] * MAX_AUTH_FAILURES
    throttled = api.client.get("/orders", headers=bad)
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) > 0
