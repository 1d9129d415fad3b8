"""What an officer reads on the console's pages: Chinese names, China time, markup shown as
text, search, sign-in answers; and what the command center's page lists."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import get_args, get_origin

from fastapi.testclient import TestClient
from pydantic import BaseModel

from tests.api.conftest import POLICY, REFERENCE, TOPICS
from tests.console.conftest import ACCOUNTS, PASSWORD, ConsoleWorld, csrf_of, sign_in
from workorder_pipeline.api.console import labels
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.schemas.commands import (
    CallbackResult,
    CommandAction,
    Disposition,
    LifecycleEventName,
    RefusalCode,
    ReturnReason,
)
from workorder_pipeline.schemas.inbound import CONTRACTS
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workflow import CardLevel
from workorder_pipeline.schemas.workorder import PipelineEventName, Priority, WorkOrder, WorkOrderStatus
from workorder_pipeline.services.intake import InboundMessage, Intake

MARKUP = '<img src=x onerror="alert(1)">'


def _complaint_with_markup(console: ConsoleWorld) -> str:
    """A complaint whose summary and enterprise name hold markup, through the real intake."""
    now = datetime.now(UTC).replace(microsecond=0)
    complaint = {
        "schema": "complaint/1",
        "ticket_id": "JS12328-MARKUP-0001",
        "channel": "12328",
        "received_at": now.isoformat(),
        "due_at": (now + timedelta(days=5)).isoformat(),
        "category": "refusal",
        "subject": {"plate": "苏F12345", "enterprise_name": f"<b>{MARKUP}</b>", "region_code": "320682"},
        "summary": f"<script>alert('x')</script>{MARKUP}",
        "complainant": {"name": "顾晓明", "phone": "13962718304"},
        "urgent": False,
    }
    intake = Intake(
        compile_policy(POLICY), console.api.repository, TOPICS.inbound(), reference=lambda: REFERENCE
    )
    raw = json.dumps(complaint, ensure_ascii=False).encode()
    result = intake.handle([InboundMessage(TOPICS.complaints, 0, 10_000, None, raw, 0)], now)
    assert result.created, result
    intake.dispatched(result.to_dispatch, now)
    return result.created[0].id


def test_markup_in_a_summary_or_name_shows_as_text_and_personal_data_is_not_shown(
    console: ConsoleWorld,
) -> None:
    order_id = _complaint_with_markup(console)
    order = console.api.repository.get(order_id)
    assert order is not None
    client = console.signed_in("duty")
    for url in (f"/console/orders/{order_id}", "/console/orders?group=all&q=JS12328-MARKUP-0001"):
        html = client.get(url).text
        assert "&lt;script&gt;alert(" in html and "<script>alert(" not in html
        assert "&lt;img src=x" in html and "<img src=x" not in html
        assert "<b>" not in html
        assert "13962718304" not in html and "顾晓明" not in html
    page = client.get(f"/console/orders/{order_id}").text
    assert "<dt>投诉内容</dt>" in page and "<dt>企业名称</dt>" in page and "<dt>summary</dt>" not in page


def _contract_fields(model: type[BaseModel], prefix: str = "") -> set[str]:
    """A contract's fields as the order page names them (``object.name`` one level down; a
    list is one field)."""
    names: set[str] = set()
    for name, field in model.model_fields.items():
        shown = prefix + (field.alias or name)
        listed = get_origin(field.annotation) is list
        inner = [
            a for a in (field.annotation, *get_args(field.annotation)) if isinstance(a, type) and not listed
        ]
        models = [a for a in inner if issubclass(a, BaseModel)]
        names |= _contract_fields(models[0], shown + ".") if models else {shown}
    return names


def test_every_signal_field_shown_on_the_order_page_has_a_chinese_label() -> None:
    shown = set().union(*(_contract_fields(model) for model in CONTRACTS.values()))
    hidden = {"schema", "evidence", "complainant.name", "complainant.phone"}
    assert shown - hidden - set(labels.SIGNAL_FIELD) == set()
    assert set(labels.SIGNAL_FIELD) <= shown  # no label for a field no contract has


def test_search_finds_orders_by_plate_enterprise_and_ticket(console: ConsoleWorld) -> None:
    client = console.signed_in("duty")
    orders = console.api.orders()
    with_plate = next(o for o in orders if o.subject.plate)
    with_enterprise = next(o for o in orders if o.subject.enterprise_name)
    complaint = next(o for o in orders if o.kind is SignalKind.complaint)
    terms = {
        with_plate.subject.plate: with_plate.id,
        with_enterprise.subject.enterprise_name[2:6]: with_enterprise.id,  # type: ignore[index]
        complaint.source_ids[0].split("/")[-1]: complaint.id,  # the ticket number alone
        "no-such-thing-%_": None,
    }
    for term, order_id in terms.items():
        html = client.get("/console/orders", params={"group": "all", "q": term}).text
        if order_id is None:
            assert "没有工单" in html
        else:
            assert f"/console/orders/{order_id}" in html, term


def test_the_squads_list_shows_time_left_and_the_card_in_words(console: ConsoleWorld) -> None:
    overdue = console.api.claim("squad-1", overdue=True)
    html = console.signed_in("squad-1").get("/console/orders?group=pending").text
    row = html[html.index(f"/console/orders/{overdue.id}") :]
    row = row[: row.index("</tr>")]
    assert "已超期" in row and "红牌" in row and "+08:00" in row


def test_a_wrong_password_and_a_disabled_account_read_the_same_refusal(console: ConsoleWorld) -> None:
    account = ACCOUNTS["squad-2"]
    wrong = sign_in(console.client(), account.certificate_no, "not-the-password")
    assert wrong.status_code == 401 and "执法证号或密码错误，或账号已停用" in wrong.text
    console.officers.set_disabled(account.certificate_no, True, datetime.now(UTC))
    try:
        disabled = sign_in(console.client(), account.certificate_no, PASSWORD)
        assert disabled.status_code == 401 and "执法证号或密码错误，或账号已停用" in disabled.text
    finally:
        console.officers.set_disabled(account.certificate_no, False, datetime.now(UTC))


def test_a_sign_in_form_without_its_csrf_token_is_refused(console: ConsoleWorld) -> None:
    client = console.client()
    client.get("/console/login")
    account = ACCOUNTS["squad-1"]
    response = client.post(
        "/console/login",
        data={"certificate_no": account.certificate_no, "password": PASSWORD, "csrf_token": "x"},
    )
    assert response.status_code == 403 and "wo_console=" not in response.headers.get("set-cookie", "")


def test_signing_out_ends_the_session_for_good(console: ConsoleWorld) -> None:
    client = console.signed_in("squad-1")
    cookie = client.cookies.get("wo_console")
    token = csrf_of(client.get("/console/orders").text)
    assert client.post("/console/logout", data={"csrf_token": token}).headers["location"] == "/console/login"
    again = console.client()
    again.cookies.set("wo_console", cookie or "", path="/console")
    assert again.get("/console/orders").headers["location"] == "/console/login"


def test_the_command_center_lists_returned_orders_and_re_routes_one(console: ConsoleWorld) -> None:
    order = console.api.claim("squad-1")
    squad = console.signed_in("squad-1")
    token = csrf_of(squad.get(f"/console/orders/{order.id}").text)
    returned = squad.post(
        f"/console/orders/{order.id}/return", data={"csrf_token": token, "reason": "not_our_jurisdiction"}
    )
    assert returned.headers["location"].endswith("done=return"), returned.headers["location"]
    duty = console.signed_in("duty")
    center = duty.get("/console/center").text
    section = center[center.index('id="returned"') : center.index('id="extensions"')]
    assert f"/console/orders/{order.id}" in section
    page = duty.get(f"/console/orders/{order.id}").text
    assert "改派" in page and "属地不符" in page
    answer = duty.post(
        f"/console/orders/{order.id}/reassign", data={"csrf_token": csrf_of(page), "to_unit": "squad-2"}
    )
    assert answer.headers["location"].endswith("done=reassign")
    history = duty.get(answer.headers["location"]).text
    assert "改派至执法二中队" in history and "陈刚（ZH-0001）" in history


def test_a_refused_action_says_why_in_chinese(console: ConsoleWorld) -> None:
    order = console.api.claim("squad-1")
    client = console.signed_in("squad-1")
    token = csrf_of(client.get(f"/console/orders/{order.id}").text)
    client.post(f"/console/orders/{order.id}/accept", data={"csrf_token": token})
    client.post(f"/console/orders/{order.id}/start", data={"csrf_token": token})
    # Feedback alone, with no colleague: the policy needs two officers.
    answer = client.post(
        f"/console/orders/{order.id}/feedback", data={"csrf_token": token, "disposition": "unfounded"}
    )
    assert answer.headers["location"].endswith("refused=too_few_officers")
    assert "未能办理：执法人员人数不足" in client.get(answer.headers["location"]).text


def test_every_vocabulary_has_a_chinese_name() -> None:
    for table, vocabulary in (
        (labels.STATUS, WorkOrderStatus),
        (labels.KIND, SignalKind),
        (labels.PRIORITY, Priority),
        (labels.ACTION, CommandAction),
        (labels.DISPOSITION, Disposition),
        (labels.RETURN_REASON, ReturnReason),
        (labels.CALLBACK, CallbackResult),
        (labels.CARD, CardLevel),
        (labels.REFUSAL, RefusalCode),
    ):
        assert set(table) == set(vocabulary), vocabulary
    assert set(labels.EVENT) == set(LifecycleEventName) | set(PipelineEventName)
    grouped = [s for _, _, statuses in labels.SQUAD_GROUPS for s in statuses]
    assert len(grouped) == len(set(grouped))


def test_a_supervisor_drills_from_a_rate_to_the_orders_behind_it(console: ConsoleWorld) -> None:
    client = console.signed_in("supervisor")
    start = client.get("/console")
    assert start.headers["location"] == "/console/figures"
    html = client.get("/console/figures").text
    assert "办结率" in html and "本月" in html and "上月" in html
    assert re.search(r"数据截至 \d\d:\d\d \(UTC\+08:00\)", html), "the figures say when they were read"
    link = re.search(
        r'href="(/console/figures/orders\?period=this_month&amp;unit=squad-1&amp;figure=closed&amp;part=denominator)"'
        r"[^>]*>(\d+)</a>",
        html,
    )
    assert link, "squad-1's 办结率 this month links to its orders"
    listing = client.get(link.group(1).replace("&amp;", "&")).text
    ids = set(re.findall(r'<a href="/console/orders/([^"?]+)"', listing))
    assert len(ids) == int(link.group(2)) > 0
    orders = [console.api.repository.get(order_id) for order_id in ids]
    assert all(o is not None and o.unit == "squad-1" for o in orders)
    assert "办结率" in listing and "参与考核的工单（分母）" in listing


def _send(client: TestClient, order_id: str, action: str, **form: str) -> str:
    """Post the order page's form for ``action``; where the answer leads (its outcome)."""
    token = csrf_of(client.get(f"/console/orders/{order_id}").text)
    answer = client.post(f"/console/orders/{order_id}/{action}", data={"csrf_token": token, **form})
    assert answer.status_code == 303, answer.text[:300]
    location: str = answer.headers["location"]
    return location


def _open_order_not_due_soon(console: ConsoleWorld, unit: str) -> WorkOrder:
    """A dispatched order of ``unit`` due in more than a day, no other test has claimed."""
    world, soon = console.api, datetime.now(UTC) + timedelta(days=1)
    for order in sorted(world.orders(), key=lambda o: o.id):
        free = order.id not in world._claimed and order.status is WorkOrderStatus.dispatched
        if free and order.unit == unit and order.due_at > soon:
            world._claimed.add(order.id)
            return order
    raise LookupError(f"no order of {unit} due later than a day from now in the samples")


def _listed_under(html: str, section: str, next_section: str, order_id: str) -> bool:
    return (
        f"/console/orders/{order_id}"
        in html[html.index(f'id="{section}"') : html.index(f'id="{next_section}"')]
    )


def test_the_duty_officer_approves_an_extension_request(console: ConsoleWorld) -> None:
    order = _open_order_not_due_soon(console, "squad-1")
    squad, duty = console.signed_in("squad-1"), console.signed_in("duty")
    assert _send(squad, order.id, "accept").endswith("done=accept")
    field = "working_days" if order.working_days is not None else "hours"
    asked = _send(squad, order.id, "request_extension", **{field: "2"}, note="需调取监控")
    assert asked.endswith("done=request_extension"), asked
    assert _listed_under(duty.get("/console/center").text, "extensions", "callbacks", order.id)
    assert "待审批延期" in duty.get(f"/console/orders/{order.id}").text
    assert _send(duty, order.id, "approve_extension").endswith("done=approve_extension")
    history = duty.get(f"/console/orders/{order.id}").text
    assert "批准延期" in history and "陈刚（ZH-0001）" in history
    assert not _listed_under(duty.get("/console/center").text, "extensions", "callbacks", order.id)
    stored = console.api.repository.get(order.id)
    assert stored is not None and (stored.extended_working_days, stored.extended_hours) in ((2, 0), (0, 2))


def test_the_duty_officer_records_the_callback_and_closes_the_complaint(console: ConsoleWorld) -> None:
    order = console.api.claim("squad-1", kind=SignalKind.complaint)
    squad, duty = console.signed_in("squad-1"), console.signed_in("duty")
    for action in ("accept", "start"):
        assert _send(squad, order.id, action).endswith(f"done={action}")
    given = _send(squad, order.id, "feedback", disposition="unfounded", colleague="JS0682-0342")
    assert given.endswith("done=feedback"), given
    assert _listed_under(duty.get("/console/center").text, "callbacks", "overdue", order.id)
    page = duty.get(f"/console/orders/{order.id}").text
    assert "吴军（ZH-0002）" in page and "孙丽" not in page  # colleagues: officers who act, not readers
    closed = _send(duty, order.id, "close", callback="satisfied", attempts="1", colleague="ZH-0002")
    assert closed.endswith("done=close"), closed
    history = duty.get(closed).text
    assert "办结" in history and "满意" in history and "陈刚（ZH-0001）" in history
    stored = console.api.repository.get(order.id)
    assert stored is not None and stored.status is WorkOrderStatus.closed
