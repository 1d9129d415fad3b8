"""policy/notifications.yaml: the shipped file loads with the rest; every mistake is
reported at its file, line and field, by the loader `wo run` and `wo rules check` share."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.unit.test_policy_files import edit, line_of
from workorder_pipeline.services.notification_files import NOTIFICATIONS_FILE, unset_secrets
from workorder_pipeline.services.policy_files import PolicyError, PolicyProblem
from workorder_pipeline.services.policy_set import load_policy_set
from workorder_pipeline.wo.cli import main

POLICY_DIR = Path(__file__).resolve().parents[2] / "policy"


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    target = tmp_path / "policy"
    shutil.copytree(POLICY_DIR, target)
    return target


def the_problem(directory: Path) -> PolicyProblem:
    with pytest.raises(PolicyError) as caught:
        load_policy_set(directory)
    found = caught.value.problems
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


def test_the_shipped_notifications_load_with_their_routes_compiled() -> None:
    loaded = load_policy_set(POLICY_DIR)
    assert loaded.notifications is not None and loaded.notify_router is not None
    assert {r.id for r in loaded.notifications.receivers} >= {"command-center-mail", "leadership-dingtalk"}


def test_without_the_file_nobody_is_notified_and_the_rest_loads(policy_dir: Path) -> None:
    (policy_dir / NOTIFICATIONS_FILE).unlink()
    loaded = load_policy_set(policy_dir)
    assert loaded.notifications is None and loaded.notify_router is None


def test_a_route_naming_an_unknown_receiver_is_reported_at_its_line(policy_dir: Path) -> None:
    edit(policy_dir, NOTIFICATIONS_FILE, "receivers: [squads-wecom]", "receivers: [squads-wechat]")
    problem = the_problem(policy_dir)
    assert problem.line == line_of(policy_dir, NOTIFICATIONS_FILE, "squads-wechat")
    assert problem.field == "route.routes.0.receivers.0"
    assert "squads-wechat" in problem.message


def test_a_route_matching_an_unknown_unit_is_reported(policy_dir: Path) -> None:
    edit(
        policy_dir,
        NOTIFICATIONS_FILE,
        "match: {level: [reminder, yellow, red, acceptance_overdue]}",
        "match: {unit: [squad-9], level: [reminder]}",
    )
    problem = the_problem(policy_dir)
    assert problem.field == "route.routes.0.match.unit.0"
    assert "squad-9" in problem.message


@pytest.mark.parametrize(
    ("old", "new", "field", "marker"),
    [
        ("match: {level: [leadership]}", "match: {level: [boss]}", "route.routes.3.match.level.0", "[boss]"),
        (
            'start: "22:00", end: "07:30"}\n  - id: duty',
            'start: "25:00", end: "07:30"}\n  - id: duty',
            "receivers.3.quiet_hours.start",
            "25:00",
        ),
        ("attempts: 5", "attempts: 0", "attempts", "attempts: 0"),
        (
            'body: {mobile: "{phone}"',
            'body: {mobile: "{phone_number}"',
            "receivers.4.via.sms.body",
            "phone_number",
        ),
    ],
)
def test_a_wrong_value_is_reported_at_its_line_and_field(
    policy_dir: Path, old: str, new: str, field: str, marker: str
) -> None:
    edit(policy_dir, NOTIFICATIONS_FILE, old, new)
    problem = the_problem(policy_dir)
    assert problem.field == field
    assert problem.line == line_of(policy_dir, NOTIFICATIONS_FILE, marker)


def test_a_robot_url_written_in_the_file_is_refused_it_holds_the_key(policy_dir: Path) -> None:
    edit(
        policy_dir,
        NOTIFICATIONS_FILE,
        "channel: wecom, url_env: WO_NOTIFY_WECOM_CC_URL",
        "channel: wecom, url: 'https://qyapi.weixin.qq.com/x?key=k'",
    )
    with pytest.raises(PolicyError) as caught:
        load_policy_set(policy_dir)
    found = {(p.field, p.line) for p in caught.value.problems}
    line = line_of(policy_dir, NOTIFICATIONS_FILE, "qyapi")
    assert found == {("receivers.1.via.wecom.url", line), ("receivers.1.via.wecom.url_env", line)}


def test_an_unknown_command_center_receiver_is_reported(policy_dir: Path) -> None:
    edit(
        policy_dir,
        NOTIFICATIONS_FILE,
        "command_center_receiver: command-center-mail",
        "command_center_receiver: nobody",
    )
    problem = the_problem(policy_dir)
    assert problem.field == "command_center_receiver" and "nobody" in problem.message


def test_rules_check_refuses_what_run_refuses_and_lists_unset_secrets(
    policy_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WO_NOTIFY_SMS_TOKEN", "set")
    assert main(["rules", "check", str(policy_dir)]) == 0
    out = capsys.readouterr().out
    assert "command-center-mail: WO_NOTIFY_SMTP_PASSWORD" in out
    assert "WO_NOTIFY_SMS_TOKEN" not in out
    edit(policy_dir, NOTIFICATIONS_FILE, "attempts: 5", "attempts: many")
    assert main(["rules", "check", str(policy_dir)]) == 1
    assert f"{NOTIFICATIONS_FILE}:" in capsys.readouterr().err


def test_unset_secrets_name_receiver_and_variable() -> None:
    loaded = load_policy_set(POLICY_DIR)
    assert loaded.notifications is not None
    everything = {name.split(": ")[1]: "x" for name in unset_secrets(loaded.notifications, {})}
    assert unset_secrets(loaded.notifications, everything) == []
    assert "leadership-dingtalk: WO_NOTIFY_DINGTALK_LEADERS_SECRET" in unset_secrets(loaded.notifications, {})


def test_rules_notify_shows_receivers_and_when_quiet_hours_let_them_be_told(
    capsys: pytest.CaptureFixture[str],
) -> None:
    night = "2026-12-06T23:10:00+08:00"
    args = ["rules", "notify", "--unit", "squad-1", "--priority", "P2", "--kind", "complaint", "--at", night]
    assert main([*args, "--level", "reminder", "--rules", str(POLICY_DIR)]) == 0
    out = capsys.readouterr().out
    assert "squads-wecom" in out and "sent 2026-12-07 07:30:00+08:00" in out
    assert main([*args, "--level", "leadership", "--rules", str(POLICY_DIR)]) == 0
    out = capsys.readouterr().out
    assert "urgent      yes" in out
    assert [line.split()[0] for line in out.splitlines() if line.startswith("  ")] == [
        "leadership-dingtalk",
        "duty-sms",
        "command-center-wecom",
    ]
    assert out.count("sent now") == 3  # P2 leadership is urgent by level: through the night
