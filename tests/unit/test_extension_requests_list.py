"""延期申请待审批 as the command center reads it: ``wo orders extensions`` in Chinese, with
times in China time and the time each order has left, against the API served over HTTP on
in-memory ports (tests/fakes.py). The same list on the real databases:
tests/integration/test_extension_requests.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import uvicorn

from tests.fakes import FakeWorker, InMemoryApiStore
from tests.unit.test_api_without_database import FAR_FUTURE, NOW, applied, order
from workorder_pipeline.api.app import create_app
from workorder_pipeline.api.auth import Role, TokenEntry, Tokens, hash_token
from workorder_pipeline.processors.time_texts import time_left
from workorder_pipeline.schemas.commands import LifecycleEventName
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import WorkOrderStatus
from workorder_pipeline.wo.cli import main
from workorder_pipeline.wo.embedded_broker import HOST, free_port


def _asked(store: InMemoryApiStore, order_id: str, note: str) -> None:
    store.histories[order_id] = [
        {"type": LifecycleEventName.extension_requested.value, "detail": {"note": "上一次的理由"}},
        {"type": LifecycleEventName.extension_requested.value, "detail": {"note": note}},
    ]


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    store = InMemoryApiStore()
    asked_at = NOW - timedelta(hours=2)
    store.add(
        order(
            "WO-LATE",
            "squad-1",
            status=WorkOrderStatus.in_progress,
            due_at=NOW - timedelta(minutes=90),
            extension_requested_at=asked_at - timedelta(days=1),
            pending_extension_hours=6.0,
        )
    )
    store.add(
        order(
            "WO-SOON",
            "squad-2",
            kind=SignalKind.complaint,
            status=WorkOrderStatus.accepted,
            due_at=NOW + timedelta(days=1, hours=2, minutes=3, seconds=59),
            extension_requested_at=asked_at,
            pending_extension_days=2,
        )
    )
    store.add(order("WO-NONE", "squad-1", status=WorkOrderStatus.in_progress))
    _asked(store, "WO-LATE", "等待车主到案")
    _asked(store, "WO-SOON", "需调取监控录像")
    entries = [
        TokenEntry(name="cc", role=Role.command_center, sha256=hash_token("cc"), expires_at=FAR_FUTURE),
        TokenEntry(name="s1", role=Role.unit, unit="squad-1", sha256=hash_token("s1"), expires_at=FAR_FUTURE),
    ]
    app = create_app(store, Tokens(entries), FakeWorker(store, applied), clock=lambda: NOW)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host=HOST, port=port, log_config=None, access_log=False, log_level="warning")
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
    code = main(["orders", "extensions", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_center_reads_the_waiting_requests_in_chinese_due_first(
    api_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = wo_orders(monkeypatch, capsys, api_url, "cc")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "待审批的延期申请 2 件（按办结时限排序，最早的在前）："
    late, soon = lines[1:]
    # NOW is 2026-12-01 02:00 UTC, 10:00 China time.
    assert late == (
        "WO-LATE  squad-1  vehicle_alarm  申请于 2026-11-30 08:00:00+08:00  申请延期 6 小时  "
        "办结时限 2026-12-01 08:30:00+08:00（已超期 1小时30分钟）  理由：等待车主到案"
    )
    assert soon == (
        "WO-SOON  squad-2  complaint  申请于 2026-12-01 08:00:00+08:00  申请延期 2 个工作日  "
        "办结时限 2026-12-02 12:03:59+08:00（剩余 1天2小时）  理由：需调取监控录像"
    )


def test_the_list_filters_by_unit_and_kind(
    api_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = wo_orders(monkeypatch, capsys, api_url, "cc", "--unit", "squad-2")
    assert code == 0 and [line.split()[0] for line in out.splitlines()[1:]] == ["WO-SOON"]
    code, out, _ = wo_orders(monkeypatch, capsys, api_url, "cc", "--kind", "complaint", "--unit", "squad-1")
    assert (code, out) == (0, "没有待审批的延期申请\n")


def test_a_squad_is_told_in_one_line_that_the_list_is_the_command_centers(
    api_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = wo_orders(monkeypatch, capsys, api_url, "s1")
    assert (code, out) == (1, "")
    assert err == "wo orders: 跨工单的延期申请仅限指挥中心和督查查看 (HTTP 403)\n"


def test_a_kind_that_does_not_exist_names_the_option(
    api_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = wo_orders(monkeypatch, capsys, api_url, "cc", "--kind", "nonsense")
    assert (code, out) == (1, "")
    assert err == "wo orders: --kind: 不是可选的取值之一\n"


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "剩余 0分钟"),
        (59, "剩余 0分钟"),
        (3600, "剩余 1小时0分钟"),
        (86400, "剩余 1天0小时"),
        (-1, "已超期 0分钟"),
        (-5400, "已超期 1小时30分钟"),
        (-(3 * 86400 + 61), "已超期 3天0小时"),
    ],
)
def test_the_time_left_is_said_to_the_minute_under_a_day_and_in_days_and_hours_past_one(
    seconds: int, shown: str
) -> None:
    assert time_left(seconds) == shown
