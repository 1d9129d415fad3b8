"""Driving the console in a real browser: Debian's headless Chromium through Playwright (its
own browser download cannot work on these machines), the console served over HTTP as
`wo run` serves it, screenshots kept under var/artifacts/console/ (gitignored)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.api.conftest import REPO_ROOT
from tests.conftest import skip_unless_ci
from tests.console.conftest import PASSWORD, Account, ConsoleWorld
from workorder_pipeline.wo.embedded_broker import HOST, free_port

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO_ROOT / "var" / "artifacts" / "console"
#: Debian's chromium, as the issue asks.
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-background-networking"]


@contextmanager
def served(console: ConsoleWorld) -> Iterator[str]:
    """The console's app on a free port of this machine; its base URL."""
    port = free_port()
    config = uvicorn.Config(
        console.api.app, host=HOST, port=port, log_config=None, access_log=False, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the console did not start"
        time.sleep(0.05)
    try:
        yield f"http://{HOST}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@dataclass
class Session:
    """One browser on the console, the problems its pages reported, where shots go."""

    browser: Browser
    page: Page
    shots: Path
    url: str
    problems: list[str] = field(default_factory=list)

    def shot(self, name: str, page: Page | None = None) -> None:
        (page or self.page).screenshot(path=self.shots / f"{name}.png", full_page=True)


@contextmanager
def chromium(url: str, request: pytest.FixtureRequest, folder: str | None = None) -> Iterator[Session]:
    """A desktop-sized page in headless Chromium; any console error or script error of its
    pages fails the test when the block ends."""
    if not CHROMIUM.exists():
        skip_unless_ci("Debian's chromium is not installed (/usr/bin/chromium)")
    shots = ARTIFACTS / (folder or request.node.name.replace("[", "-").rstrip("]"))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            session = Session(browser, page, shots, url)
            page.on("console", lambda m: session.problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: session.problems.append(str(e)))
            yield session
        finally:
            browser.close()
    # No script error, no resource refused (CSP) or missing.
    assert not session.problems, session.problems


def sign_in(session: Session, me: Account, start_heading: str) -> None:
    """Sign in with the keyboard; the role's start page shows ``start_heading``."""
    page = session.page
    page.goto(f"{session.url}/console")
    expect(page.get_by_label("执法证号")).to_be_focused()
    page.keyboard.type(me.certificate_no)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=start_heading, exact=True)).to_be_visible()
    expect(page.get_by_text(f"{me.name}（{me.certificate_no}")).to_be_visible()
