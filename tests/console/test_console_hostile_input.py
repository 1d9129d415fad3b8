"""The console against hostile input: every form and query parameter fed the worst bytes
(U+0000, invalid UTF-8, lone surrogates, 1 MB, integers past 64 bits, SQL and markup), a
CSRF token of another session, a session ended mid-action and the same action sent twice.
Each answer is a 4xx or a page saying in Chinese what is wrong; none is a 500 and none
has a second effect. On SQLite and on PostgreSQL (PostgreSQL refuses U+0000 in text)."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from urllib.parse import quote_plus

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.console.conftest import ACCOUNTS, PASSWORD, ConsoleWorld, csrf_of
from workorder_pipeline.schemas.commands import LifecycleEventName

FORM = {"content-type": "application/x-www-form-urlencoded"}
SQL = "' OR '1'='1'; DROP TABLE work_order; --"
MARKUP = '"><script>alert(1)</script>'
#: Raw bytes of a form field's value, as a browser (or anyone) may send them.
HOSTILE_VALUES: dict[str, bytes] = {
    "u0000": b"%00",
    "u0000-inside": b"JS0682-0117%00x",
    "invalid-utf8": b"%FF%FE%C3",
    "raw-invalid-utf8": b"\xff\xfe\xc3",
    "lone-surrogate": b"%ED%A0%80",
    "sql": quote_plus(SQL).encode(),
    "markup": quote_plus(MARKUP).encode(),
    "huge-int": b"1" + b"0" * 40,
    "long": b"x" * 5000,
}
#: A request body past the API's limit (api/guard.MAX_BODY_BYTES).
MEGABYTE = b"x" * (1 << 20)


def post_raw(client: TestClient, url: str, fields: dict[str, bytes]) -> httpx.Response:
    """A form posted as the very bytes given (no encoding by the client)."""
    body = b"&".join(quote_plus(name).encode() + b"=" + value for name, value in fields.items())
    response: httpx.Response = client.post(url, content=body, headers=FORM)
    return response


def assert_refused_in_words(response: httpx.Response) -> None:
    """A page, a redirect or a 4xx; never a 500 nor a traceback."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert "Traceback" not in response.text and "Internal Server Error" not in response.text


@pytest.mark.parametrize("field", ["certificate_no", "password"])
@pytest.mark.parametrize("value", list(HOSTILE_VALUES), ids=str)
def test_a_hostile_sign_in_is_refused_in_words_and_opens_no_session(
    console: ConsoleWorld, field: str, value: str
) -> None:
    client = console.client()
    token = csrf_of(client.get("/console/login").text).encode()
    fields = {"certificate_no": ACCOUNTS["squad-1"].certificate_no.encode(), "password": PASSWORD.encode()}
    fields[field] = HOSTILE_VALUES[value]
    response = post_raw(client, "/console/login", {**fields, "csrf_token": token})
    assert response.status_code == 401 and "执法证号或密码错误" in response.text, response.text[:300]
    assert "wo_console=" not in response.headers.get("set-cookie", "")


@pytest.mark.parametrize("value", [*HOSTILE_VALUES, "percent", "underscore"], ids=str)
def test_a_hostile_search_lists_nothing_it_should_not_and_shows_the_term_as_text(
    console: ConsoleWorld, value: str
) -> None:
    raw = {"percent": b"%25", "underscore": b"_", **HOSTILE_VALUES}[value]
    client = console.signed_in("duty")
    response = client.get("/console/orders?group=all&q=" + raw.decode("latin-1"))
    assert_refused_in_words(response)
    if response.status_code == 200:
        # SQL's wildcards and quotes are plain characters of the term: nothing matches them.
        assert 'href="/console/orders/WO-' not in response.text
        assert "<script>alert(1)</script>" not in response.text


@pytest.mark.parametrize(
    "page_no",
    ["-1", "10001", "1" + "0" * 40, "abc", "1e3", "%00", "0x10", "%FF%FE", "%ED%A0%80", "p" * 60_000],
)
def test_a_page_number_out_of_range_is_refused_in_chinese_naming_the_field(
    console: ConsoleWorld, page_no: str
) -> None:
    response = console.signed_in("duty").get(f"/console/orders?group=all&page={page_no}")
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "填写有误" in response.text, response.text[:300]
    if page_no != "%00":  # refused before any route, for every parameter: the link, not the field
        assert "页码" in response.text, response.text[:300]
    assert page_no not in response.text and "\ufffd" not in response.text, response.text[:300]


def test_a_console_form_over_the_body_limit_is_refused_with_a_page_in_chinese(console: ConsoleWorld) -> None:
    client = console.signed_in("squad-1")
    response = client.post("/console/orders/WO-1/accept", content=MEGABYTE, headers=FORM)
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/html")
    assert "内容过大" in response.text and "64 KB" in response.text


@pytest.mark.parametrize("group", ["<script>", "%00", "all%27--", "x" * 5000])
def test_an_unknown_group_shows_the_pending_orders(console: ConsoleWorld, group: str) -> None:
    response = console.signed_in("duty").get(f"/console/orders?group={group}")
    assert response.status_code in (200, 422), response.text
    if response.status_code == 200:
        assert "<script>" not in response.text.split("<body", 1)[1].replace("<script src", "")


@pytest.mark.parametrize(
    "order_id", [SQL, '"><img src=x onerror=alert(1)>', "x" * 5000, "%ED%A0%80", "%FF%FE"]
)
def test_a_hostile_order_id_reads_as_no_such_order(console: ConsoleWorld, order_id: str) -> None:
    client = console.signed_in("squad-1")
    path = order_id if order_id.startswith("%") else quote_plus(order_id)
    page = client.get(f"/console/orders/{path}")
    assert page.status_code == 404 and "没有工单" in page.text, page.text[:300]
    assert "<img src=x" not in page.text
    token = csrf_of(client.get("/console/orders").text)
    sent = client.post(f"/console/orders/{path}/accept", data={"csrf_token": token})
    assert sent.status_code == 404 and "没有工单" in sent.text


def test_an_order_id_with_a_slash_is_no_page_of_the_console(console: ConsoleWorld) -> None:
    client = console.signed_in("squad-1")
    for path in ("..%2F..%2Fetc%2Fpasswd", "WO-1%2Faccept"):
        assert client.get(f"/console/orders/{path}").status_code in (404, 405)
        assert client.post(f"/console/orders/{path}/accept", data={}).status_code in (403, 404, 405)


#: Each form field of the actions, with the action (and role) whose form carries it.
ACTION_FIELDS = {
    "note": ("squad-1", "feedback"),
    "reason": ("squad-1", "return"),
    "disposition": ("squad-1", "feedback"),
    "colleague": ("squad-1", "feedback"),
    "hours": ("squad-1", "request_extension"),
    "working_days": ("squad-1", "request_extension"),
    "callback": ("duty", "close"),
    "attempts": ("duty", "close"),
    "to_unit": ("duty", "reassign"),
}
NUMBERS = {"nan": b"nan", "inf": b"inf", "minus-zero": b"-0", "e999": b"1e999", "minus": b"-1"}


@pytest.mark.parametrize("field", list(ACTION_FIELDS))
def test_hostile_values_in_an_actions_form_are_refused_in_words_and_poison_nothing(
    console: ConsoleWorld, field: str
) -> None:
    """Each value is either refused by the form (422, in Chinese) or sent and decided by the
    worker's handler (done/refused): never a 500, never a command the handler chokes on
    (the fixture fails on any handler error), never a value stored other than it was sent."""
    role, action = ACTION_FIELDS[field]
    order = console.api.claim("squad-1")
    client = console.signed_in(role)
    token = csrf_of(client.get(f"/console/orders/{order.id}").text).encode()
    base = {"reason": b"not_our_jurisdiction", "disposition": b"unfounded", "callback": b"satisfied"}
    for name, value in {**HOSTILE_VALUES, **NUMBERS, "megabyte": MEGABYTE}.items():
        fields = {**base, field: value, "csrf_token": token}
        response = post_raw(client, f"/console/orders/{order.id}/{action}", fields)
        assert_refused_in_words(response)
        if response.status_code == 303:
            assert "refused=" in response.headers["location"] or "done=" in response.headers["location"]
        elif name == "megabyte":
            assert response.status_code == 413
        else:
            assert response.status_code == 422 and "填写有误" in response.text, (name, response.text[:300])
    for event in console.api.events(order.id):
        assert "\x00" not in str(event) and "\ufffd" not in str(event), event


def _history_count(console: ConsoleWorld, order_id: str, event: LifecycleEventName) -> int:
    return sum(1 for row in console.api.events(order_id) if row["type"] == event)


def form_of(html: str) -> dict[str, str]:
    """The hidden fields every action form of the order page carries."""
    found = re.search(r'name="form_id" value="([^"]+)"', html)
    assert found, "the order page's forms carry no form id"
    return {"csrf_token": csrf_of(html), "form_id": found.group(1)}


def test_a_double_clicked_action_takes_effect_once_and_both_clicks_read_done(console: ConsoleWorld) -> None:
    order = console.api.claim("squad-1")
    client = console.signed_in("squad-1")
    form = form_of(client.get(f"/console/orders/{order.id}").text)
    url = f"/console/orders/{order.id}/accept"
    with ThreadPoolExecutor(2) as pool:  # both clicks in flight at once
        answers = list(pool.map(lambda _: client.post(url, data=form), range(2)))
    assert [a.headers["location"] for a in answers] == [f"/console/orders/{order.id}?done=accept"] * 2
    assert _history_count(console, order.id, LifecycleEventName.accepted) == 1
    # Sent again later without the page's form id: the worker refuses it, in words.
    again = client.post(url, data={"csrf_token": form["csrf_token"]})
    assert "refused=" in again.headers["location"]
    assert "未能办理" in client.get(again.headers["location"]).text
    assert _history_count(console, order.id, LifecycleEventName.accepted) == 1


def test_a_double_clicked_re_route_moves_the_order_once(console: ConsoleWorld) -> None:
    order = console.api.claim("squad-1")
    squad, duty = console.signed_in("squad-1"), console.signed_in("duty")
    returned = squad.post(
        f"/console/orders/{order.id}/return",
        data={**form_of(squad.get(f"/console/orders/{order.id}").text), "reason": "not_our_jurisdiction"},
    )
    assert returned.headers["location"].endswith("done=return")
    form = {**form_of(duty.get(f"/console/orders/{order.id}").text), "to_unit": "squad-2"}
    answers = [duty.post(f"/console/orders/{order.id}/reassign", data=form) for _ in range(2)]
    assert all(a.headers["location"].endswith("done=reassign") for a in answers), [a.headers for a in answers]
    assert _history_count(console, order.id, LifecycleEventName.reassigned) == 1
    stored = console.api.repository.get(order.id)
    assert stored is not None and stored.unit == "squad-2"


def test_a_refused_form_changed_and_sent_again_from_the_same_page_is_decided_anew(
    console: ConsoleWorld,
) -> None:
    order = console.api.claim("squad-1")
    client = console.signed_in("squad-1")
    form = form_of(client.get(f"/console/orders/{order.id}").text)
    for action in ("accept", "start"):
        assert client.post(f"/console/orders/{order.id}/{action}", data=form).status_code == 303
    url = f"/console/orders/{order.id}/feedback"
    alone = client.post(url, data={**form, "disposition": "unfounded"})
    assert alone.headers["location"].endswith("refused=too_few_officers")
    # The officer goes Back, ticks a colleague and sends the same page's form again.
    with_colleague = client.post(url, data={**form, "disposition": "unfounded", "colleague": "JS0682-0342"})
    assert with_colleague.headers["location"].endswith("done=feedback"), with_colleague.headers["location"]


def test_an_action_after_the_session_ended_signs_in_again_and_does_nothing(console: ConsoleWorld) -> None:
    order = console.api.claim("squad-1")
    client = console.signed_in("squad-1")
    token = csrf_of(client.get(f"/console/orders/{order.id}").text)
    # Another tab signs out (or the account is disabled, or the session idles out).
    cookie = client.cookies.get("wo_console")
    assert client.post("/console/logout", data={"csrf_token": token}).status_code == 303
    stale = console.client()
    stale.cookies.set("wo_console", cookie or "", path="/console")
    before = console.api.events(order.id)
    answer = stale.post(f"/console/orders/{order.id}/accept", data={"csrf_token": token})
    assert answer.status_code == 303 and answer.headers["location"] == "/console/login"
    assert console.api.events(order.id) == before


def test_a_csrf_token_of_the_same_officers_other_session_is_refused(console: ConsoleWorld) -> None:
    order = console.api.claim("squad-1")
    phone, desk = console.signed_in("squad-1"), console.signed_in("squad-1")
    token = csrf_of(phone.get(f"/console/orders/{order.id}").text)
    answer = desk.post(f"/console/orders/{order.id}/accept", data={"csrf_token": token})
    assert answer.status_code == 403 and "表单已失效" in answer.text
    assert _history_count(console, order.id, LifecycleEventName.accepted) == 0


@pytest.mark.parametrize("field", ["certificate_no", "name", "unit", "role", "password"])
def test_hostile_account_forms_are_refused_in_words_and_shown_as_text(
    console: ConsoleWorld, field: str
) -> None:
    admin = console.signed_in("admin")
    token = csrf_of(admin.get("/console/admin/officers").text).encode()
    for number, (name, value) in enumerate({**HOSTILE_VALUES, "megabyte": MEGABYTE}.items()):
        fields = {
            "certificate_no": f"T-{field}-{number}".encode(),
            "name": "测试".encode(),
            "unit": b"squad-1",
            "role": b"officer",
            "password": PASSWORD.encode(),
            field: value,
            "csrf_token": token,
        }
        response = post_raw(admin, "/console/admin/officers", fields)
        assert_refused_in_words(response)
        if response.status_code != 303:
            assert response.status_code == 413 or "<h1" in response.text, (name, response.text[:300])
    listing = admin.get("/console/admin/officers")
    assert listing.status_code == 200 and "<script>alert(1)</script>" not in listing.text
    now = datetime.now(UTC)
    for officer in console.officers.officers(None, now):
        assert "\x00" not in officer.name and "\ufffd" not in officer.name + officer.certificate_no


@pytest.mark.parametrize("field", ["name", "role", "unit", "days"])
def test_a_hostile_token_form_is_refused_in_words(console: ConsoleWorld, field: str) -> None:
    admin = console.signed_in("admin")
    token = csrf_of(admin.get("/console/admin/access").text).encode()
    values = {**HOSTILE_VALUES, "superscript": b"%C2%B2", "digits": b"9" * 5000, "crlf": b"a%0D%0Ab: c"}
    for name, value in values.items():
        fields = {"name": b"x", "role": b"command_center", "unit": b"", "days": b"30", field: value}
        response = post_raw(admin, "/console/admin/access/token", {**fields, "csrf_token": token})
        assert_refused_in_words(response)
        assert response.status_code in (200, 422), (name, response.text[:300])
        assert "<h1" in response.text, (name, response.text[:300])  # a page of the console, in words
        assert "<script>alert(1)</script>" not in response.text
        if response.status_code == 200:
            # The line for the tokens file stays one line whatever the holder's name holds.
            line = response.text.split("  - {", 1)[1].split("}", 1)[0]
            assert "\n" not in line and "\r" not in line


@pytest.mark.parametrize(
    "url",
    [
        "/console/figures/orders?period=this_month&unit={v}&figure=closed&part=denominator",
        "/console/figures/orders?period={v}&unit=squad-1&figure=closed",
        "/console/figures/orders?period=this_month&unit=squad-1&figure={v}&part={v}",
        "/console/reports/{v}/html",
        "/console/reports/2026-11/{v}",
        "/console/reports/9999-99/pdf",
    ],
)
def test_hostile_figure_and_report_parameters_answer_a_page_or_a_4xx(console: ConsoleWorld, url: str) -> None:
    client = console.signed_in("duty")
    for value in (
        "%27%20OR%201%3D1--",
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "%FF%FE",
        "x" * 5000,
        "1" + "0" * 40,
    ):
        response = client.get(url.replace("{v}", value))
        assert_refused_in_words(response)
        assert "<script>alert(1)</script>" not in response.text
