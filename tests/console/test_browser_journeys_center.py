"""The duty officer's and the supervisor's journeys in a real browser (Debian's headless
Chromium, driven by Playwright; tests/console/browsing.py): the duty officer re-routes a
returned order, approves an extension request, records a complaint's callback and closes it;
the supervisor drills from a rate to the orders behind it and downloads a monthly report; the
administrator makes an API token, shown once. What a squad did before is done
through the console's forms over HTTP (not the journey under test)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Locator, Page, expect

from tests.console.browsing import Session, chromium, served, sign_in
from tests.console.conftest import ACCOUNTS, ConsoleWorld, csrf_of
from workorder_pipeline.processors.figures import Period
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import WorkOrder, WorkOrderStatus
from workorder_pipeline.services.report_archive import MonthlyReports


def _squad_does(client: TestClient, order_id: str, action: str, **form: str) -> None:
    token = csrf_of(client.get(f"/console/orders/{order_id}").text)
    answer = client.post(f"/console/orders/{order_id}/{action}", data={"csrf_token": token, **form})
    assert answer.headers.get("location", "").endswith(f"done={action}"), answer.text[:300]


def _not_due_soon(console: ConsoleWorld) -> WorkOrder:
    """A dispatched order of squad-1 due in more than a day (an extension is asked for)."""
    world, soon = console.api, datetime.now(UTC) + timedelta(days=1)
    for order in sorted(world.orders(), key=lambda o: o.id):
        if (
            order.id not in world._claimed
            and order.status is WorkOrderStatus.dispatched
            and order.unit == "squad-1"
            and order.due_at > soon
        ):
            world._claimed.add(order.id)
            return order
    raise LookupError("no order of squad-1 due later than a day from now in the samples")


def _listed(page: Page, queue: str, order_id: str) -> Locator:
    return page.locator(f"section#{queue}").get_by_role("link", name=order_id)


def _open_from_the_center(session: Session, queue: str, order_id: str) -> Page:
    page = session.page
    page.get_by_role("navigation", name="主导航").get_by_role("link", name="指挥中心待办").click()
    expect(page.get_by_role("heading", name="指挥中心", exact=True)).to_be_visible()
    _listed(page, queue, order_id).click()
    expect(page.get_by_role("heading", name=f"工单 {order_id}")).to_be_visible()
    return page


def _re_route(session: Session, order_id: str) -> None:
    page = _open_from_the_center(session, "returned", order_id)
    expect(page.locator("ol.history")).to_contain_text("属地不符")
    session.shot("02-returned-order")
    form = page.locator("form[action$='/reassign']")
    form.get_by_label("改派至").select_option(label="执法二中队")
    form.get_by_label("说明").fill("属地为二中队辖区")
    form.get_by_role("button", name="改派").click()
    expect(page.get_by_role("status")).to_have_text("已改派")
    expect(page.locator("ol.history")).to_contain_text("改派至执法二中队")
    session.shot("03-re-routed")


def _approve(session: Session, order_id: str) -> None:
    page = _open_from_the_center(session, "extensions", order_id)
    expect(page.get_by_text("待审批延期")).to_be_visible()
    page.get_by_role("button", name="批准延期", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("已批准延期")
    expect(page.locator("ol.history")).to_contain_text("批准延期")
    session.shot("04-extension-approved")


def _call_back_and_close(session: Session, order_id: str) -> None:
    page = _open_from_the_center(session, "callbacks", order_id)
    form = page.locator("form[action$='/close']")
    form.get_by_label("回访结果").select_option(label="满意")
    form.get_by_label("回访次数").fill("2")
    colleague = ACCOUNTS["duty-2"]
    form.get_by_label(f"{colleague.name}（{colleague.certificate_no}）").check()
    form.get_by_label("情况说明").fill("电话回访投诉人，对处理结果满意")
    session.shot("05-callback-form")
    form.get_by_role("button", name="办结").click()
    expect(page.get_by_role("status")).to_have_text("已办结")
    history = page.locator("ol.history")
    expect(history).to_contain_text("满意")
    expect(history).to_contain_text(f"{colleague.name}（{colleague.certificate_no}）")
    session.shot("06-closed")


def test_the_duty_officer_re_routes_approves_an_extension_and_closes_after_the_callback(
    console: ConsoleWorld, request: pytest.FixtureRequest
) -> None:
    returned, extended = console.api.claim("squad-1"), _not_due_soon(console)
    complaint = console.api.claim("squad-1", kind=SignalKind.complaint)
    squad = console.signed_in("squad-1")
    _squad_does(squad, returned.id, "return", reason="not_our_jurisdiction")
    _squad_does(squad, extended.id, "accept")
    field = "working_days" if extended.working_days is not None else "hours"
    _squad_does(squad, extended.id, "request_extension", **{field: "2"}, note="需调取监控")
    for action in ("accept", "start"):
        _squad_does(squad, complaint.id, action)
    _squad_does(squad, complaint.id, "feedback", disposition="unfounded", colleague="JS0682-0342")

    with served(console) as url, chromium(url, request) as session:
        sign_in(session, ACCOUNTS["duty"], "指挥中心")
        queues = (("returned", returned), ("extensions", extended), ("callbacks", complaint))
        for queue, order in queues:
            expect(_listed(session.page, queue, order.id)).to_be_visible()
        session.shot("01-center")
        _re_route(session, returned.id)
        _approve(session, extended.id)
        _call_back_and_close(session, complaint.id)
        session.page.get_by_role("link", name="指挥中心待办").click()
        for queue, order in queues:
            expect(_listed(session.page, queue, order.id)).to_have_count(0)
        session.shot("07-center-after")

    re_routed, decided, closed = (console.api.repository.get(o.id) for o in (returned, extended, complaint))
    assert re_routed is not None and re_routed.unit == "squad-2"
    assert decided is not None and decided.pending_extension_days is None
    assert decided.pending_extension_hours is None
    assert closed is not None and closed.status is WorkOrderStatus.closed


def test_the_supervisor_drills_from_a_rate_to_the_orders_behind_it(
    console: ConsoleWorld, request: pytest.FixtureRequest
) -> None:
    reports: MonthlyReports = console.api.app.state.parts.reports
    reports.keep_last_month(datetime.now(UTC))
    month = Period.last_month(datetime.now(UTC)).label.replace("-", "年") + "月"
    with served(console) as url, chromium(url, request) as session:
        page = session.page
        sign_in(session, ACCOUNTS["supervisor"], "考核指标（本月与上月）")
        session.shot("01-figures")
        link = page.get_by_role("link", name=re.compile(r"^\d{4}-\d{2} 办结率 分母 (\d+) 件$")).first
        expect(link).to_be_visible()
        label = link.get_attribute("aria-label") or ""
        count = int(re.search(r"分母 (\d+) 件", label).group(1))  # type: ignore[union-attr]
        assert count > 0, label
        link.click()
        expect(page.get_by_role("heading", name=re.compile("办结率：参与考核的工单（分母）"))).to_be_visible()
        rows = page.locator("table.orders tbody tr")
        expect(rows).to_have_count(count)
        session.shot("02-orders-behind-the-rate")
        first = rows.first.get_by_role("link").first
        order_id = first.inner_text()
        first.click()
        expect(page.get_by_role("heading", name=f"工单 {order_id}")).to_be_visible()
        expect(page.get_by_role("heading", name="办理", exact=True)).to_have_count(0)  # read-only: no actions
        session.shot("03-order-read-only")
        page.go_back()
        page.get_by_role("link", name="返回考核指标").click()
        expect(page.get_by_role("heading", name="考核指标（本月与上月）")).to_be_visible()
        page.get_by_role("navigation", name="主导航").get_by_role("link", name="月度报告").click()
        expect(page.get_by_role("cell", name=month, exact=True)).to_be_visible()
        with page.expect_download() as download:
            page.get_by_role("link", name=f"下载 {month} 报告（PDF）").click()
        assert download.value.suggested_filename.endswith(".pdf")
        session.shot("04-monthly-reports")


def test_the_administrator_makes_a_token_shown_once_and_sees_the_trusted_keys(
    console: ConsoleWorld, request: pytest.FixtureRequest
) -> None:
    with served(console) as url, chromium(url, request) as session:
        page = session.page
        sign_in(session, ACCOUNTS["admin"], "账号与名册")
        page.get_by_role("navigation", name="主导航").get_by_role("link", name="令牌与密钥").click()
        expect(page.get_by_role("heading", name="接口令牌与指令签名密钥")).to_be_visible()
        expect(page.get_by_role("cell", name="api-tests", exact=True)).to_be_visible()
        page.get_by_label("持有人").fill("二中队值班台")
        page.get_by_label("角色").select_option(label="中队")
        page.get_by_label("所属单位（中队令牌必选）").select_option(label="执法二中队")
        page.get_by_role("button", name="生成令牌").click()
        expect(page.get_by_role("heading", name="新令牌（仅显示这一次）")).to_be_visible()
        secret = page.get_by_label("令牌", exact=True).input_value()
        assert len(secret) >= 40
        session.shot("01-token-made")
        page.goto(f"{url}/console/admin/access")
        expect(page.get_by_text(secret)).to_have_count(0)
        session.shot("02-tokens-and-keys")
