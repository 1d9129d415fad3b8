"""Reminders and escalations reach people: every channel against a real receiver on
127.0.0.1 (robots checking their documented formats, DingTalk's signature as the platform
computes it, the webhook's HMAC, an SMTP server with STARTTLS and AUTH), each attempt
recorded, retries, failure escalated, quiet hours across midnight China time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.integration.notify_support import SMTP_USER, WECOM_KEY
from tests.integration.notify_world import CREATED, LATER, PLATE, World, attempt_log, escalate
from tests.integration.notify_world import world as world  # the fixture
from workorder_pipeline.api.app import create_app
from workorder_pipeline.api.auth import Role, TokenEntry, Tokens, hash_token
from workorder_pipeline.api.models import NotificationOut
from workorder_pipeline.schemas.notifications import AttemptOutcome, ChannelType
from workorder_pipeline.services.notifications import Sent
from workorder_pipeline.storage.api_store import ApiStore
from workorder_pipeline.storage.database import create_engine

pytestmark = pytest.mark.integration


def test_every_channel_delivers_its_documented_format_once(world: World) -> None:
    everyone = ["wecom", "wecom-text", "dingtalk", "sms", "hook", "mail"]
    policy = world.policy(route={"routes": [{"match": {"level": ["leadership"]}, "receivers": everyone}]})
    order_id = escalate(world)
    world.clock.now = LATER.astimezone(UTC)  # 20:00 China time: nobody's quiet hours
    sent = world.run(world.notifier(policy))
    assert sorted((s.channel, s.outcome) for s in sent) == sorted(
        [
            (ChannelType(c), AttemptOutcome.delivered)
            for c in ("wecom", "wecom", "dingtalk", "sms", "webhook", "email")
        ]
    )
    assert world.run(world.notifier(policy)) == []  # sent once

    wecom = [r.json() for r in world.robots.of("/cgi-bin/webhook/send")]
    assert sorted(m["msgtype"] for m in wecom) == ["markdown", "text"]
    markdown = next(m["markdown"]["content"] for m in wecom if m["msgtype"] == "markdown")
    assert markdown.startswith("**【挂牌督办】**工单 " + order_id)
    assert f"[{order_id}](https://console.example/orders/{order_id})" in markdown
    (ding,) = world.robots.of("/robot/send")
    assert ding.query["timestamp"] == [str(int(world.clock.now.timestamp() * 1000))]
    assert ding.json()["markdown"]["title"] == "挂牌督办"
    (sms,) = world.robots.of("/sms")
    assert sms.json()["mobile"] == "13800000001" and "已超期 1天12小时" in sms.json()["content"]
    (hook,) = world.robots.of("/hook")
    assert hook.headers["x-wo-notification-id"] == hook.json()["notification_id"]
    assert hook.json()["work_order_id"] == order_id and hook.json()["level"] == "leadership"
    (mail,) = world.mailbox.messages
    assert world.mailbox.tls == [True] and world.mailbox.logins == [SMTP_USER]
    assert mail["Subject"] == f"挂牌督办 {order_id}"
    assert "办理期限 2026-11-24 08:00（北京时间）" in mail.get_content()
    bodies = b"".join(r.body for r in world.robots.received).decode() + mail.get_content()
    assert PLATE not in bodies

    log = attempt_log(world, order_id)
    assert log["dingtalk"] == [("delivered", "0")] and log["hook"] == [("delivered", "202")]
    assert log["mail"] == [("delivered", "250")]
    for shown in ApiStore(world.engine).notifications(order_id):
        assert NotificationOut.model_validate(shown).status == "sent"


def test_a_robot_answering_http_200_with_an_errcode_is_a_failure_retried(world: World) -> None:
    world.env["T_WECOM_URL"] = f"{world.server.base}/cgi-bin/webhook/send?key=wrong"
    world.env["T_DING_SEC"] = "SECnot-the-robots-secret"
    order_id = escalate(world)
    world.clock.now = LATER.astimezone(UTC)
    sent = world.run(world.notifier(world.policy()))
    assert {s.outcome for s in sent} == {AttemptOutcome.rejected}
    log = attempt_log(world, order_id)
    assert log == {"wecom": [("rejected", "93000")], "dingtalk": [("rejected", "310000")]}
    world.clock.now += timedelta(seconds=29)
    assert world.run(world.notifier(world.policy())) == []  # backing off
    world.env["T_WECOM_URL"] = f"{world.server.base}/cgi-bin/webhook/send?key={WECOM_KEY}"
    world.clock.now += timedelta(seconds=1)
    world.run(world.notifier(world.policy()))
    assert attempt_log(world, order_id)["wecom"] == [("rejected", "93000"), ("delivered", "0")]


def test_a_receiver_down_then_back_gets_each_notification_once_late(world: World) -> None:
    policy = world.policy(route={"receivers": ["hook"]})  # reminder, overdue, leadership
    order_id = escalate(world)
    start = LATER.astimezone(UTC)
    world.server.stop()
    for seconds in (0, 30, 90):  # backoff 30 s, 60 s, then 120 s (the cap)
        world.clock.now = start + timedelta(seconds=seconds)
        assert {s.outcome for s in world.run(world.notifier(policy))} == {AttemptOutcome.unreachable}
    world.server.start()  # back after a minute and a half: the next attempt is at 210 s
    world.clock.now = start + timedelta(seconds=209)
    assert world.run(world.notifier(policy)) == []
    world.clock.now = start + timedelta(seconds=210)
    assert [s.outcome for s in world.run(world.notifier(policy))] == [AttemptOutcome.delivered] * 3
    world.clock.now += timedelta(minutes=10)
    assert world.run(world.notifier(policy)) == []
    hooks = world.robots.of("/hook")
    assert len(hooks) == 3 and len({h.json()["notification_id"] for h in hooks}) == 3
    for shown in ApiStore(world.engine).notifications(order_id):
        outcomes = [a["outcome"] for a in shown["attempt_log"]]
        assert outcomes == ["unreachable"] * 3 + ["delivered"]
        assert shown["sent_at"] - shown["created_at"] == timedelta(seconds=210)


def test_after_the_policys_attempts_the_command_center_is_told(world: World) -> None:
    policy = world.policy(
        attempts=2,
        command_center_receiver="wecom-text",
        route={"routes": [{"match": {"level": ["leadership"]}, "receivers": ["hook"]}]},
    )
    order_id = escalate(world)
    world.server.robots.forced["/hook"] = (500, {"error": "down"})
    world.clock.now = LATER.astimezone(UTC)
    world.run(world.notifier(policy))
    world.clock.now += timedelta(seconds=30)
    sent = world.run(world.notifier(policy))
    assert [(s.channel, s.outcome) for s in sent] == [
        (ChannelType.webhook, AttemptOutcome.unreachable),
        (ChannelType.webhook, AttemptOutcome.gave_up),
        (ChannelType.wecom, AttemptOutcome.delivered),  # the notice: urgent, due at once
    ]
    (notice,) = world.robots.of("/cgi-bin/webhook/send")
    assert notice.json()["text"]["content"].startswith(
        f"【通知发送失败】工单 {order_id} 的挂牌督办通知未能送达接收方 hook（2 次尝试）"
    )
    statuses = {n["receiver"]: n["status"] for n in ApiStore(world.engine).notifications(order_id)}
    assert statuses == {"hook": "failed", "wecom-text": "sent"}


@pytest.mark.parametrize("urgent", [False, True])
def test_quiet_hours_across_midnight_china_time_hold_all_but_urgent(world: World, urgent: bool) -> None:
    # Created 05:10 China time, due in 24 h: the reminder (75%) fires at 23:10 that night.
    created = datetime.fromisoformat("2026-11-23T05:10:00+08:00")
    reminder = datetime.fromisoformat("2026-11-23T23:10:00+08:00")
    policy = world.policy(
        route={"receivers": ["mail"]}, urgent={"levels": [], "priorities": ["P1"] if urgent else []}
    )
    order_id = escalate(world, created, reminder)
    world.clock.now = reminder
    world.run(world.notifier(policy))
    if urgent:  # a P1 order: its reminder, and the new urgent order itself (dispatched today)
        subjects = sorted(m["Subject"] for m in world.mailbox.messages)
        assert subjects == [f"办理提醒 {order_id}", f"紧急工单 {order_id}"]
        return
    for moment in ("2026-11-23T23:59:59+08:00", "2026-11-24T00:00:00+08:00", "2026-11-24T07:29:59+08:00"):
        world.clock.now = datetime.fromisoformat(moment)
        world.run(world.notifier(policy))
        assert world.mailbox.messages == [], moment
    world.clock.now = datetime.fromisoformat("2026-11-24T07:30:00+08:00")
    world.run(world.notifier(policy))
    (mail,) = world.mailbox.messages
    # Held past the deadline itself (05:10): the text says so, counted when it is sent.
    assert mail["Subject"] == f"办理提醒 {order_id}" and "已超期 2小时20分钟" in mail.get_content()


def test_two_workers_planning_and_sending_together_tell_each_receiver_once(
    world: World, database_url: str
) -> None:

    policy = world.policy(route={"receivers": ["hook", "wecom"]})
    order_id = escalate(world)
    world.clock.now = LATER.astimezone(UTC)
    other = create_engine(database_url)
    first, second = world.notifier(policy), world.notifier(policy, other)

    async def both() -> list[list[Sent]]:
        return list(await asyncio.gather(first.run(world.clock), second.run(world.clock)))

    results = asyncio.run(both())
    other.dispose()
    assert sum(len(r) for r in results) == 6  # 3 levels x 2 receivers, each sent by one worker
    assert len(world.robots.of("/hook")) == 3 and len(world.robots.of("/cgi-bin/webhook/send")) == 3
    assert len(ApiStore(world.engine).notifications(order_id)) == 6


def test_a_new_urgent_order_is_told_once_to_its_receivers(world: World) -> None:
    policy = world.policy(
        route={"routes": [{"match": {"level": ["new_urgent_order"]}, "receivers": ["wecom-text"]}]}
    )
    order_id = escalate(world, CREATED, CREATED)  # dispatched, nothing escalated yet
    world.clock.now = (CREATED + timedelta(minutes=1)).astimezone(UTC)
    assert [s.outcome for s in world.run(world.notifier(policy))] == [AttemptOutcome.delivered]
    world.clock.now += timedelta(minutes=5)
    assert world.run(world.notifier(policy)) == []
    (told,) = world.robots.of("/cgi-bin/webhook/send")
    assert told.json()["text"]["content"].startswith(
        f"【紧急工单】工单 {order_id}（车辆报警，执法一中队）剩余 23小时59分钟"
    )


def test_what_stays_unresolved_is_repeated_at_the_policys_interval_at_most_so_often(world: World) -> None:
    policy = world.policy(
        repeat_every_minutes=60,
        repeat_at_most=2,
        route={"routes": [{"match": {"level": ["leadership"]}, "receivers": ["wecom-text"]}]},
    )
    order_id = escalate(world)
    start = LATER.astimezone(UTC)
    told = []
    for minutes in (0, 59, 60, 119, 120, 180, 240):
        world.clock.now = start + timedelta(minutes=minutes)
        told += [minutes for _ in world.run(world.notifier(policy))]
    assert told == [0, 60, 120]  # the first and two repeats, an hour apart
    rounds = sorted(n["round"] for n in ApiStore(world.engine).notifications(order_id))
    assert rounds == [0, 1, 2]
    texts = [r.json()["text"]["content"] for r in world.robots.of("/cgi-bin/webhook/send")]
    assert [t.split("已超期 ")[1].split("，")[0] for t in texts] == ["1天12小时", "1天13小时", "1天14小时"]


class Unused:
    def publish(self, command: Any) -> None:
        raise AssertionError("no command is sent here")


def test_the_orders_api_answer_lists_notifications_with_their_attempts(world: World) -> None:
    policy = world.policy(route={"routes": [{"match": {"level": ["leadership"]}, "receivers": ["hook"]}]})
    order_id = escalate(world)
    world.server.stop()
    world.clock.now = LATER.astimezone(UTC)
    world.run(world.notifier(policy))
    token = "duty-officer-token"
    entry = TokenEntry(
        name="duty",
        role=Role.command_center,
        sha256=hash_token(token),
        expires_at=LATER + timedelta(days=365),
    )
    app = create_app(ApiStore(world.engine), Tokens([entry]), Unused(), clock=world.clock)
    client = TestClient(app)
    answer = client.get(f"/orders/{order_id}", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    (shown,) = answer.json()["notifications"]
    assert (shown["receiver"], shown["channel"], shown["status"], shown["level"]) == (
        "hook",
        "webhook",
        "pending",
        "leadership",
    )
    (attempt,) = shown["attempt_log"]
    assert attempt["outcome"] == "unreachable" and attempt["finished_at"] is not None
    assert datetime.fromisoformat(shown["next_attempt_at"]) == world.clock.now + timedelta(seconds=30)


def test_an_escalation_of_an_order_closed_before_it_was_planned_tells_nobody(world: World) -> None:
    import sqlalchemy as sa

    from workorder_pipeline.storage.tables import work_order

    policy = world.policy(route={"receivers": ["hook"]})
    order_id = escalate(world)  # fired while the notifier was not running...
    with world.engine.begin() as conn:  # ...and the order was closed meanwhile
        conn.execute(sa.update(work_order).where(work_order.c.id == order_id).values(status="closed"))
    world.clock.now = LATER.astimezone(UTC)
    assert world.run(world.notifier(policy)) == []
    assert world.robots.received == [] and ApiStore(world.engine).notifications(order_id) == []
