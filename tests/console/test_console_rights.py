"""The console's rights, as a user meets them: every URL as every role against the rights
table, a crawl of every link each role is shown, CSRF, and another unit's orders."""

from __future__ import annotations

import re
from collections import deque

import pytest

from tests.console.conftest import ACCOUNTS, ConsoleWorld, csrf_of
from workorder_pipeline.schemas.workorder import WorkOrderStatus

ROLES = ("anonymous", "squad-1", "squad-2", "duty", "supervisor", "admin")
#: URL (``{own}``: an order of squad-1) -> the answer to each role of ROLES, in order.
#: 303: to a start page (or, anonymous, to the sign-in page); 404: an order the role may
#: not read answers as one that does not exist, as the API does.
RIGHTS: dict[str, tuple[int, ...]] = {
    "/console": (303, 303, 303, 303, 303, 303),
    "/console/login": (200, 200, 200, 200, 200, 200),
    "/console/orders": (303, 200, 200, 200, 200, 200),
    "/console/orders?group=working": (303, 200, 200, 200, 200, 200),
    "/console/orders?group=all&q=%3Cscript%3E": (303, 200, 200, 200, 200, 200),
    "/console/orders/{own}": (303, 200, 404, 200, 200, 200),
    "/console/orders/WO-NONE": (303, 404, 404, 404, 404, 404),
    "/console/center": (303, 403, 403, 200, 403, 403),
    "/console/admin/officers": (303, 403, 403, 403, 403, 200),
    "/console/admin/access": (303, 403, 403, 403, 403, 200),
    "/console/figures": (303, 403, 403, 200, 200, 403),
    "/console/figures/orders?period=this_month&unit=squad-1&figure=closed&part=denominator": (
        303,
        403,
        403,
        200,
        200,
        403,
    ),
    "/console/figures/orders?period=next_year&unit=squad-1&figure=closed": (303, 403, 403, 404, 404, 403),
    "/console/reports": (303, 403, 403, 200, 200, 403),
    "/console/reports/2000-01/html": (303, 403, 403, 200, 200, 403),
    "/console/reports/2000-13/html": (303, 403, 403, 404, 404, 403),
    "/console/reports/2000-01/doc": (303, 403, 403, 404, 404, 403),
    "/console/static/console.css": (200, 200, 200, 200, 200, 200),
}
#: Sending ``accept`` about squad-1's dispatched order: only squad-1 may (303 to its page).
ACCEPT_RIGHTS = (303, 303, 404, 403, 403, 403)
#: Links a crawl follows no further (signing out would end the crawl's session).
_LINK = re.compile(r'href="(/console[^"#]*)"')


def _expected(console: ConsoleWorld, role: str, url: str) -> int:
    """The rights table's answer; for an order's page: a squad reads its own orders and
    those copied to it (404 for any other), every other role reads all."""
    found = re.fullmatch(r"/console/orders/([^/?]+)(\?.*)?", url)
    if found:
        order = console.api.repository.get(found.group(1))
        unit = ACCOUNTS[role].unit
        squad = role.startswith("squad")
        return 200 if order is not None and (not squad or unit in (order.unit, *order.copied_to)) else 404
    if url.startswith("/console/orders?"):
        url = "/console/orders"
    if url.startswith("/console/figures/orders?"):
        url = "/console/figures"
    if re.fullmatch(r"/console/reports/\d{4}-\d{2}/(html|pdf|xlsx)", url):
        url = "/console/reports/2000-01/html"  # a kept report: as any month's
    if url not in RIGHTS:
        raise AssertionError(f"{url} is not in the rights table")
    return dict(zip(ROLES, RIGHTS[url], strict=True))[role]


def test_every_console_url_answers_each_role_as_the_rights_table_says(console: ConsoleWorld) -> None:
    own = console.api.claim("squad-1")
    clients = {role: console.client() if role == "anonymous" else console.signed_in(role) for role in ROLES}
    for pattern, answers in RIGHTS.items():
        url = pattern.format(own=own.id)
        for role, expected in zip(ROLES, answers, strict=True):
            response = clients[role].get(url)
            assert response.status_code == expected, (role, url, response.text[:300])
            if role == "anonymous" and expected == 303:
                assert response.headers["location"] == "/console/login"


def test_sending_an_action_is_the_order_units_alone(console: ConsoleWorld) -> None:
    own = console.api.claim("squad-1")
    for role, expected in zip(ROLES, ACCEPT_RIGHTS, strict=True):
        if role == "anonymous":
            response = console.client().post(f"/console/orders/{own.id}/accept", data={"csrf_token": "x"})
        else:
            client = console.signed_in(role)
            token = csrf_of(client.get("/console/orders").text)
            response = client.post(f"/console/orders/{own.id}/accept", data={"csrf_token": token})
        assert response.status_code == expected, (role, response.text[:300])
    assert console.api.repository.get(own.id).status is WorkOrderStatus.accepted  # type: ignore[union-attr]
    events = [row["type"] for row in console.api.events(own.id)]
    assert events.count("accepted") == 1 and "command_rejected" not in events


def test_a_crawl_of_every_link_each_role_is_shown_meets_the_rights_table(console: ConsoleWorld) -> None:
    for role in ROLES[1:]:
        client = console.signed_in(role)
        seen: set[str] = set()
        queue = deque(["/console"])
        while queue and len(seen) < 80:
            url = queue.popleft()
            if url in seen:
                continue
            seen.add(url)
            response = client.get(url)
            expected = _expected(console, role, url)
            assert response.status_code == expected, (role, url)
            if response.status_code == 303:
                queue.append(response.headers["location"])
            elif "text/html" in response.headers.get("content-type", ""):
                queue.extend(link.replace("&amp;", "&") for link in _LINK.findall(response.text))
        assert len(seen) > 3, (role, seen)


@pytest.mark.parametrize("token", [None, "", "not-the-token"])
def test_a_form_without_the_sessions_csrf_token_is_refused_and_changes_nothing(
    console: ConsoleWorld, token: str | None
) -> None:
    own = console.api.claim("squad-1")
    client = console.signed_in("squad-1")
    before = console.api.events(own.id)
    data = {} if token is None else {"csrf_token": token}
    response = client.post(f"/console/orders/{own.id}/accept", data=data)
    assert response.status_code == 403 and "表单已失效" in response.text
    assert console.api.events(own.id) == before
    # Another officer's token is not this session's either.
    other = csrf_of(console.signed_in("squad-1-leader").get("/console/orders").text)
    assert client.post(f"/console/orders/{own.id}/accept", data={"csrf_token": other}).status_code == 403
    assert client.post("/console/logout", data=data).status_code == 403


def test_a_squad_officer_sees_only_its_units_orders(console: ConsoleWorld) -> None:
    listing = console.signed_in("squad-2").get("/console/orders?group=all").text
    ids = set(re.findall(r'href="/console/orders/([^"?]+)"', listing))
    assert ids, "squad-2 has orders in the samples"
    for order_id in ids:
        order = console.api.repository.get(order_id)
        assert order is not None and "squad-2" in (order.unit, *order.copied_to)


def test_the_cookie_is_httponly_strict_and_secure_under_tls(console: ConsoleWorld) -> None:
    client = console.client()
    client.base_url = client.base_url.copy_with(scheme="https")
    token = csrf_of(client.get("/console/login").text)
    account = ACCOUNTS["squad-1"]
    response = client.post(
        "/console/login",
        data={
            "certificate_no": account.certificate_no,
            "password": "长城-correct-horse-7",
            "csrf_token": token,
        },
    )
    cookie = next(h for h in response.headers.get_list("set-cookie") if h.startswith("wo_console="))
    assert {"httponly", "secure", "samesite=strict", "path=/console"} <= {
        part.strip().lower() for part in cookie.split(";")
    }
    assert response.status_code == 303
    page = client.get("/console/orders")
    assert "default-src 'self'" in page.headers["content-security-policy"]
