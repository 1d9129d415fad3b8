"""The administrator's page of the API's tokens and the command-signing keys: what it lists
(never a secret), the token it makes (shown once, working once its line is in the file),
and who may use it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.console.conftest import TOKENS_FILE, ConsoleWorld, csrf_of
from workorder_pipeline.api.auth import Role, TokenEntry, hash_token, load_tokens
from workorder_pipeline.api.console.access import token_rows
from workorder_pipeline.services.policy_files import load_policy

UNITS = load_policy(Path(__file__).parents[2] / "policy").units.ids()


def _made_token(html: str) -> tuple[str, str]:
    token = re.search(r'id="made-token" value="([^"]+)"', html)
    line = re.search(r'<textarea id="made-line"[^>]*>([^<]+)</textarea>', html)
    assert token and line, "the page shows the new token and its line"
    return token.group(1), line.group(1).replace("&#34;", '"').replace("&quot;", '"')


def test_the_administrator_sees_every_token_and_trusted_key_but_no_secret(console: ConsoleWorld) -> None:
    html = console.signed_in("admin").get("/console/admin/access").text
    for holder, role in (("squad-1", "中队"), ("duty officer", "指挥中心"), ("inspector", "督查")):
        row = re.search(rf"<tr><td data-label=\"持有人\">{holder}</td>.*?</tr>", html, re.S)
        assert row and role in row.group(0) and "有效" in row.group(0), holder
    assert "执法一中队" in html  # the unit by its name
    for token in console.api.tokens.values():
        assert token not in html and hash_token(token) not in html
    assert "api-tests" in html and "全部单位" in html and "在用" in html  # the API's key
    assert str(TOKENS_FILE) in html and "bin/wo api token" in html and '"revoked": true' in html
    assert "bin/wo keys make" in html and "retired: true" in html and "policy/senders.yaml" in html


def test_a_made_token_is_shown_once_and_works_once_its_line_is_in_the_tokens_file(
    console: ConsoleWorld, tmp_path: Path
) -> None:
    admin = console.signed_in("admin")
    token = csrf_of(admin.get("/console/admin/access").text)
    form = {"name": "二中队 <b>值班</b>", "role": "unit", "unit": "squad-2", "days": "30"}
    answer = admin.post("/console/admin/access/token", data={"csrf_token": token, **form})
    assert answer.status_code == 200 and answer.headers["cache-control"] == "no-store"
    assert "&lt;b&gt;值班&lt;/b&gt;" in answer.text and "<b>值班</b>" not in answer.text
    secret, line = _made_token(answer.text)
    # Not written anywhere: the running API does not know it, the page lists no new holder.
    assert console.api.client.get("/orders", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    again = admin.get("/console/admin/access").text
    assert secret not in again and "值班" not in again
    # The line, put in a tokens file, makes it a squad-2 token valid for 30 days.
    path = tmp_path / "tokens.yaml"
    path.write_text(f"tokens:\n{line}\n", encoding="utf-8")
    now = datetime.now(UTC)
    holder = load_tokens(path, UNITS).principal(secret, now)
    assert holder is not None and (holder.role, holder.unit) == (Role.unit, "squad-2")
    assert load_tokens(path, UNITS).principal(secret, now + timedelta(days=31)) is None


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ({"name": "x", "role": "unit", "unit": "", "days": "30"}, "中队令牌须选择所属单位"),
        ({"name": "x", "role": "unit", "unit": "squad-99", "days": "30"}, "中队令牌须选择所属单位"),
        ({"name": "", "role": "supervisor", "unit": "", "days": "30"}, "请填写持有人"),
        ({"name": "x", "role": "root", "unit": "", "days": "30"}, "请填写持有人"),
        ({"name": "x", "role": "supervisor", "unit": "", "days": "3651"}, "有效天数"),
        ({"name": "x", "role": "supervisor", "unit": "", "days": "-1"}, "有效天数"),
    ],
)
def test_a_wrong_token_form_says_what_is_wrong(
    console: ConsoleWorld, form: dict[str, str], says: str
) -> None:
    admin = console.signed_in("admin")
    token = csrf_of(admin.get("/console/admin/access").text)
    answer = admin.post("/console/admin/access/token", data={"csrf_token": token, **form})
    assert answer.status_code == 422 and says in answer.text and 'id="made-token"' not in answer.text


def test_only_the_administrator_with_the_sessions_csrf_token_makes_tokens(console: ConsoleWorld) -> None:
    form = {"name": "x", "role": "supervisor", "unit": "", "days": "30"}
    for role in ("squad-1", "duty", "supervisor"):
        client = console.signed_in(role)
        token = csrf_of(client.get("/console/orders").text)
        answer = client.post("/console/admin/access/token", data={"csrf_token": token, **form})
        assert answer.status_code == 403 and 'id="made-token"' not in answer.text, role
    admin = console.signed_in("admin")
    assert admin.post("/console/admin/access/token", data=form).status_code == 403
    other = csrf_of(console.signed_in("duty").get("/console/orders").text)
    assert admin.post("/console/admin/access/token", data={"csrf_token": other, **form}).status_code == 403
    assert console.client().post("/console/admin/access/token", data=form).status_code in (303, 403)


def test_a_revoked_or_expired_token_is_listed_as_such() -> None:
    now = datetime.now(UTC)
    entries = tuple(
        TokenEntry(name=name, role=Role.supervisor, sha256="0" * 64, expires_at=now + days, revoked=revoked)
        for name, days, revoked in (
            ("old", timedelta(days=-1), False),
            ("gone", timedelta(days=9), True),
            ("live", timedelta(days=9), False),
        )
    )
    states = {row["name"]: row["state"] for row in token_rows(entries, {}, now)}
    assert states == {"old": "已过期", "gone": "已吊销", "live": "有效"}
