"""``wo orders`` against the real API: a refusal is one line per problem on stderr, in words
(the option and message of a 422, a command's refusal code and reason), exit 1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn

from tests.api.conftest import ApiWorld
from workorder_pipeline.schemas.times import for_people
from workorder_pipeline.wo.cli import main
from workorder_pipeline.wo.embedded_broker import HOST, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api_url(api: ApiWorld) -> Iterator[str]:
    """The module's app served over HTTP, as `wo run` serves it."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(api.app, host=HOST, port=port, log_config=None, access_log=False, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    yield f"http://{HOST}:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def wo_orders(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str, token: str, *args: str
) -> tuple[int, str, str]:
    monkeypatch.setenv("WO_API_URL", url)
    monkeypatch.setenv("WO_API_TOKEN", token)
    code = main(["orders", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_order_that_does_not_exist_is_said_in_one_line(
    api: ApiWorld, api_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = wo_orders(monkeypatch, capsys, api_url, api.tokens["squad-1"], "show", "WO-NOPE")
    assert (code, out, err) == (1, "", "wo orders: 没有这个工单，或无权查看 (HTTP 404)\n")


def test_a_bad_filter_names_the_option_and_why_in_one_line(
    api: ApiWorld, api_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = wo_orders(
        monkeypatch, capsys, api_url, api.tokens["squad-1"], "list", "--status", "finished", "--limit", "0"
    )
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0] == "wo orders: --status: 不是可选的取值之一", err
    assert lines[1] == "wo orders: --limit: 超出允许范围（过小）", err


def test_a_bad_command_field_names_the_option_in_one_line(
    api: ApiWorld, api_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    order = api.claim("squad-1")
    code, out, err = wo_orders(
        monkeypatch, capsys, api_url, api.tokens["squad-1"], "return", order.id, "--reason", "bored"
    )
    assert code == 1 and out == ""
    assert err == "wo orders: --reason: 不是可选的取值之一\n", err


def test_a_refused_command_says_its_refusal_and_reason_in_one_line(
    api: ApiWorld, api_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    order = api.claim("squad-1")
    code, _, _ = wo_orders(monkeypatch, capsys, api_url, api.tokens["squad-1"], "accept", order.id)
    assert code == 0
    code, out, err = wo_orders(
        monkeypatch, capsys, api_url, api.tokens["squad-1"], "close", order.id, "--officers", "JS0682-0117"
    )
    assert (code, out) == (1, "")
    assert err == (
        "wo orders: refused, invalid_state: cannot close an order that is accepted "
        "(only when feedback_submitted, in_progress)\n"
    )


def test_a_token_the_api_does_not_know_is_said_in_one_line(
    api_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = wo_orders(monkeypatch, capsys, api_url, "not-a-token", "list")
    assert (code, out, err) == (1, "", "wo orders: 需要有效的令牌（Bearer） (HTTP 401)\n")


def test_a_time_without_offset_is_refused_before_asking_the_api(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WO_API_URL", f"http://{HOST}:{free_port()}")  # nothing there: never asked
    monkeypatch.setenv("WO_API_TOKEN", "t")
    with pytest.raises(SystemExit) as usage:
        main(["orders", "list", "--created-from", "2026-12-06"])
    assert usage.value.code == 2
    assert "argument --created-from: '2026-12-06' needs an offset, e.g. +08:00" in capsys.readouterr().err


def test_an_order_shown_gives_its_times_in_china_time_to_the_second(
    api: ApiWorld, api_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    order = api.claim("squad-2")
    code, out, err = wo_orders(monkeypatch, capsys, api_url, api.tokens["squad-2"], "show", order.id)
    assert (code, err) == (0, "")
    shown = json.loads(out)
    assert shown["order"]["due_at"] == for_people(order.due_at)
    assert shown["order"]["due_at"].endswith("+08:00")
    assert shown["history"] and all(entry["at"].endswith("+08:00") for entry in shown["history"])
    assert "Z" not in "".join(str(entry["at"]) for entry in shown["history"])


def test_an_extension_asked_after_the_deadline_is_refused_in_one_line_in_china_time(
    api: ApiWorld, api_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An order past its deadline (the samples' complaints were due in November): the request
    reaches the state machine with its amount and reason, and the refusal names the deadline
    as people read it."""
    order = api.claim("squad-1", overdue=True)
    squad = api.tokens["squad-1"]
    assert wo_orders(monkeypatch, capsys, api_url, squad, "accept", order.id)[0] == 0
    code, out, err = wo_orders(
        monkeypatch,
        capsys,
        api_url,
        squad,
        "request-extension",
        order.id,
        "--hours",
        "6",
        "--note",
        "等待车主到案",
    )
    assert (code, out) == (1, "")
    deadline = for_people(order.due_at)
    assert err == f"wo orders: refused, too_late: an extension is asked before the deadline {deadline}\n"
    code, out, err = wo_orders(
        monkeypatch, capsys, api_url, api.tokens["command_center"], "approve-extension", order.id
    )
    assert (code, out) == (1, "")
    assert err == "wo orders: refused, no_extension_pending: no extension request is waiting\n"


def test_an_extension_without_its_amount_names_the_option(
    api: ApiWorld, api_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    order = api.claim("squad-1")
    code, out, err = wo_orders(
        monkeypatch, capsys, api_url, api.tokens["squad-1"], "request-extension", order.id, "--hours", "0"
    )
    assert (code, out) == (1, "")
    assert err == "wo orders: --hours: 超出允许范围（过小）\n", err


def test_a_note_that_looks_like_a_time_is_shown_as_written_and_breaks_no_answer(
    api: ApiWorld, api_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An officer's note is free text: neither converted nor a reason for `show` to fail
    (a time China time cannot write, past year 9999 there, once crashed it)."""
    order = api.claim("squad-2")
    note = "9999-12-31T23:59:59-12:00"
    squad = api.tokens["squad-2"]
    assert wo_orders(monkeypatch, capsys, api_url, squad, "accept", order.id, "--note", note)[0] == 0
    code, out, err = wo_orders(monkeypatch, capsys, api_url, squad, "show", order.id)
    assert (code, err) == (0, "")
    assert note in out
