"""A squad officer's journey in a real browser (Debian's headless Chromium, driven by
Playwright): sign in with the keyboard, accept an order, start verifying, give feedback with
a colleague from the roster; on a desktop and on a phone's screen. Screenshots are kept
under var/artifacts/console/ (gitignored) as the test's artefacts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.conftest import skip_unless_ci
from tests.console.browsing import ARTIFACTS, CHROMIUM, LAUNCH_ARGS, served
from tests.console.conftest import ACCOUNTS, PASSWORD, Account, ConsoleWorld


@pytest.fixture
def console_url(console: ConsoleWorld) -> Iterator[str]:
    """The console served over HTTP, as `wo run` serves it."""
    with served(console) as url:
        yield url


def _sign_in_with_the_keyboard(page: Page, console_url: str, shots: Path, me: Account) -> None:
    page.goto(f"{console_url}/console")
    expect(page.get_by_role("heading", name="登录")).to_be_visible()
    page.screenshot(path=shots / "01-sign-in.png", full_page=True)
    # The certificate field has the focus; Tab to the password, Enter to sign in.
    expect(page.get_by_label("执法证号")).to_be_focused()
    page.keyboard.type(me.certificate_no)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="本单位工单")).to_be_visible()
    expect(page.get_by_text(f"{me.name}（{me.certificate_no}")).to_be_visible()
    page.screenshot(path=shots / "02-squad-orders.png", full_page=True)


def _give_feedback(page: Page, shots: Path, me: Account, colleague: Account) -> None:
    feedback = page.locator("form[action$='/feedback']")
    feedback.get_by_label("处理结果").select_option(label="责令整改")
    feedback.get_by_label(f"{colleague.name}（{colleague.certificate_no}）").check()
    feedback.get_by_label("情况说明").fill("到场核查属实，已责令企业整改 <b>不是标记</b>")
    page.screenshot(path=shots / "04-feedback-form.png", full_page=True)
    feedback.get_by_role("button", name="提交反馈").click()
    expect(page.get_by_role("status")).to_have_text("已提交反馈")
    history = page.locator("ol.history")
    expect(history).to_contain_text("提交反馈")
    expect(history).to_contain_text(f"操作人 {me.name}（{me.certificate_no}）")
    expect(history).to_contain_text(f"{colleague.name}（{colleague.certificate_no}）")
    expect(history).to_contain_text("<b>不是标记</b>")  # typed markup shows as text
    page.screenshot(path=shots / "05-feedback-given.png", full_page=True)


def test_a_squad_officer_accepts_verifies_and_reports_with_a_colleague(
    console: ConsoleWorld, console_url: str, request: pytest.FixtureRequest
) -> None:
    if not CHROMIUM.exists():
        skip_unless_ci("Debian's chromium is not installed (/usr/bin/chromium)")
    shots = ARTIFACTS / request.node.callspec.id
    shots.mkdir(parents=True, exist_ok=True)
    order = console.api.claim("squad-1")
    me = ACCOUNTS["squad-1"]
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            _sign_in_with_the_keyboard(page, console_url, shots, me)
            page.get_by_role("link", name=order.id).click()
            expect(page.get_by_role("heading", name=f"工单 {order.id}")).to_be_visible()
            page.screenshot(path=shots / "03-order.png", full_page=True)
            page.get_by_role("button", name="签收", exact=True).click()
            expect(page.get_by_role("status")).to_have_text("已签收")
            page.get_by_role("button", name="开始核查", exact=True).click()
            expect(page.get_by_role("status")).to_have_text("已开始核查")
            _give_feedback(page, shots, me, ACCOUNTS["squad-1-leader"])

            phone = browser.new_context(
                storage_state=page.context.storage_state(),
                viewport={"width": 390, "height": 844},
                is_mobile=True,
                has_touch=True,
            ).new_page()
            phone.goto(f"{console_url}/console/orders?group=reported")
            expect(phone.get_by_role("link", name=order.id)).to_be_visible()
            phone.screenshot(path=shots / "06-phone-reported.png", full_page=True)
        finally:
            browser.close()
    stored = console.api.repository.get(order.id)
    assert stored is not None and stored.status.value == "feedback_submitted"
    assert not problems, problems  # no script error, no resource refused (CSP) or missing
