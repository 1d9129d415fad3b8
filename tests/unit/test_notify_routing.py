"""Notification routes, quiet hours, backoff and identity: pure, time passed in."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from workorder_pipeline.processors.notify_content import (
    NotifyOrder,
    render,
    render_decision,
    render_failure,
)
from workorder_pipeline.processors.notify_routing import (
    NotifyEvent,
    NotifyRouter,
    in_quiet_hours,
    notification_id,
    retry_delay,
    send_after,
)
from workorder_pipeline.processors.time_texts import time_left
from workorder_pipeline.schemas.notifications import (
    Backoff,
    NotificationLevel,
    NotificationPolicy,
    QuietHours,
)
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.times import CHINA_STANDARD_TIME
from workorder_pipeline.schemas.workorder import Priority

L = NotificationLevel
URL = "https://console.example/orders/{order_id}"

POLICY = NotificationPolicy.model_validate(
    {
        "console_url": URL,
        "route": {
            "receivers": ["root"],
            "routes": [
                {"match": {"level": ["reminder", "yellow"]}, "receivers": ["squads"]},
                {
                    "match": {"level": ["overdue"]},
                    "receivers": ["cc"],
                    "continue": True,
                    "routes": [{"match": {"unit": ["squad-2"]}, "receivers": ["squad-2-sms"]}],
                },
                {"match": {"priority": ["P1"]}, "receivers": ["duty", "cc"]},
                {"match": {"kind": ["complaint"], "level": ["leadership"]}, "receivers": ["hotline"]},
            ],
        },
    }
)


@pytest.mark.parametrize(
    ("unit", "level", "priority", "kind", "receivers"),
    [
        # nothing else matches: the root is the match
        ("squad-1", L.leadership, Priority.P3, SignalKind.vehicle_alarm, ("root",)),
        # the first match without continue stops its siblings (P1 would match further down)
        ("squad-1", L.reminder, Priority.P1, SignalKind.complaint, ("squads",)),
        # continue: the later sibling is tried too, and told (cc once)
        ("squad-1", L.overdue, Priority.P1, SignalKind.complaint, ("cc", "duty")),
        # a child that matches is the match, not its parent
        ("squad-2", L.overdue, Priority.P3, SignalKind.suspect, ("squad-2-sms",)),
        ("squad-2", L.overdue, Priority.P1, SignalKind.suspect, ("squad-2-sms", "duty", "cc")),
        # every field of a match must hold
        ("squad-1", L.leadership, Priority.P2, SignalKind.complaint, ("hotline",)),
        ("squad-1", L.leadership, Priority.P2, SignalKind.suspect, ("root",)),
    ],
)
def test_routes_pick_receivers_like_alertmanager(
    unit: str, level: L, priority: Priority, kind: SignalKind, receivers: tuple[str, ...]
) -> None:
    assert NotifyRouter(POLICY).receivers(NotifyEvent(unit, level, priority, kind)) == receivers


def cst(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=CHINA_STANDARD_TIME)


NIGHT = QuietHours(start=time(22, 0), end=time(7, 30))


@pytest.mark.parametrize(
    ("now", "quiet"),
    [
        (cst(5, 21, 59), False),
        (cst(5, 22, 0), True),
        (cst(5, 23, 59), True),
        (cst(6, 0, 0), True),
        (cst(6, 7, 29), True),
        (cst(6, 7, 30), False),
        (cst(6, 12, 0), False),
    ],
)
def test_quiet_hours_span_midnight_china_time(now: datetime, quiet: bool) -> None:
    assert in_quiet_hours(NIGHT, now.astimezone(UTC)) is quiet


def test_a_notification_due_in_quiet_hours_waits_for_their_end_china_time() -> None:
    # 23:10 CST is 15:10 UTC of the same day: the end is 07:30 CST the next day.
    assert send_after(NIGHT, False, cst(5, 23, 10).astimezone(UTC)) == cst(6, 7, 30)
    # after midnight: the end is the same morning
    assert send_after(NIGHT, False, cst(6, 2, 0)) == cst(6, 7, 30)
    assert send_after(NIGHT, False, cst(6, 9, 0)) == cst(6, 9, 0)


def test_urgent_notifications_go_out_through_quiet_hours() -> None:
    router = NotifyRouter(POLICY)  # default urgent: leadership, new urgent orders, P1
    event = NotifyEvent("squad-1", L.reminder, Priority.P1, SignalKind.complaint)
    assert router.urgent(event)
    assert send_after(NIGHT, router.urgent(event), cst(6, 2, 0)) == cst(6, 2, 0)
    assert not router.urgent(NotifyEvent("squad-1", L.reminder, Priority.P3, SignalKind.complaint))


def test_daytime_quiet_hours_do_not_wrap() -> None:
    lunch = QuietHours(start=time(12, 0), end=time(13, 0))
    assert in_quiet_hours(lunch, cst(6, 12, 30)) and not in_quiet_hours(lunch, cst(6, 23, 0))
    assert send_after(lunch, False, cst(6, 12, 30)) == cst(6, 13, 0)


def test_retries_back_off_exponentially_up_to_the_cap() -> None:
    backoff = Backoff(first_seconds=30, max_seconds=300)
    delays = [retry_delay(backoff, n).total_seconds() for n in range(1, 8)]
    assert delays == [30, 60, 120, 240, 300, 300, 300]
    assert retry_delay(backoff, 10_000) == timedelta(seconds=300)


def test_a_notification_id_depends_on_order_level_deadline_receiver_and_round() -> None:
    due = cst(6, 18)
    first = notification_id("WO-1", "overdue", due, "cc")
    assert first == notification_id("WO-1", "overdue", due.astimezone(UTC), "cc")
    others = {
        notification_id("WO-2", "overdue", due, "cc"),
        notification_id("WO-1", "leadership", due, "cc"),
        notification_id("WO-1", "overdue", due + timedelta(seconds=1), "cc"),
        notification_id("WO-1", "overdue", due, "duty"),
        notification_id("WO-1", "overdue", due, "cc", 1),
    }
    assert first not in others and len(others) == 5


def test_the_text_is_short_chinese_with_id_kind_unit_time_left_and_link() -> None:
    order = NotifyOrder("WO-20261206-0001", SignalKind.complaint, "执法一中队", cst(6, 18), plate="苏A12345")
    text = render(L.overdue, order, URL, cst(6, 20, 15).astimezone(UTC), show_plate=False)
    assert text.text == (
        "【超期督办】工单 WO-20261206-0001（群众投诉，执法一中队）已超期 2小时15分钟，"
        "办理期限 2026-12-06 18:00（北京时间）。查看：https://console.example/orders/WO-20261206-0001"
    )
    assert "苏A12345" not in text.text + text.markdown
    assert "[WO-20261206-0001](https://console.example/orders/WO-20261206-0001)" in text.markdown
    shown = render(L.overdue, order, URL, cst(6, 20), show_plate=True)
    assert "车牌 苏A12345" in shown.text
    assert len(text.text.encode()) < 2048  # a WeCom text message's limit


def test_time_left_counts_days_once_past_a_day() -> None:
    assert time_left((cst(8, 18) - cst(6, 17)).total_seconds()) == "剩余 2天1小时"
    assert time_left((cst(6, 18) - cst(6, 17, 59)).total_seconds()) == "剩余 1分钟"


def test_a_failed_delivery_names_the_receiver_not_the_person() -> None:
    text = render_failure(L.leadership, "WO-1", "duty-sms", 5, URL)
    assert text.text.startswith("【通知发送失败】工单 WO-1 的挂牌督办通知未能送达接收方 duty-sms（5 次尝试）")


def test_an_extension_decision_says_approved_with_the_new_deadline_or_rejected_in_china_time() -> None:
    moved = NotifyOrder("WO-1", SignalKind.suspect, "执法二中队", cst(8, 9, 30), plate="苏A12345")
    approved = render_decision(True, moved, URL, cst(6, 10).astimezone(UTC), show_plate=False)
    assert approved.text == (
        "【延期审批结果】工单 WO-1（疑似违规，执法二中队）的延期申请已批准，"
        "新的办理期限 2026-12-08 09:30（北京时间），剩余 1天23小时。查看：https://console.example/orders/WO-1"
    )
    assert approved.markdown.startswith("**【延期审批结果】**") and "苏A12345" not in approved.markdown
    rejected = render_decision(False, moved, URL, cst(8, 10), show_plate=True)
    assert "的延期申请被驳回，办理期限仍为 2026-12-08 09:30（北京时间），已超期 30分钟。车牌 苏A12345。" in (
        rejected.text
    )
