"""The notification tests' world: a migrated database with an escalated order, the real
receivers of notify_support on 127.0.0.1, the secrets, a clock the test moves, and
notifiers built on them as ``wo run`` builds its own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from tests.integration.notify_support import (
    DINGTALK_TOKEN,
    SMS_TOKEN,
    SMTP_PASSWORD,
    SMTP_USER,
    WEBHOOK_SECRET,
    WECOM_KEY,
    Mailbox,
    Robots,
    RobotServer,
    dingtalk_secret_whose_sign_needs_escaping,
    smtp_server,
)
from tests.integration.test_escalations import POLICY, dispatched_order
from workorder_pipeline.processors.notify_routing import NotifyRouter
from workorder_pipeline.schemas.notifications import NotificationPolicy
from workorder_pipeline.services.escalations import Escalations
from workorder_pipeline.services.notifications import LEASE, Notifier, Sent
from workorder_pipeline.storage.api_store import ApiStore
from workorder_pipeline.storage.notifications import NotificationStore
from workorder_pipeline.storage.repository import WorkOrderRepository
from workorder_pipeline.streams.channels import build_channels

CREATED = datetime.fromisoformat("2026-11-23T08:00:00+08:00")
#: Reminder, overdue and leadership have all fired by then (P1, due in 24 hours).
LATER = CREATED + timedelta(hours=60)
PLATE = "苏F"  # the sample alarm's plate starts so; show_plate is off


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    engine: Engine
    robots: Robots
    server: RobotServer
    mailbox: Mailbox
    env: dict[str, str]
    cert: Path
    clock: Clock

    def policy(self, **overrides: Any) -> NotificationPolicy:
        base = f"http://127.0.0.1:{self.server.port}"
        receivers = [
            {"id": "wecom", "via": {"channel": "wecom", "url_env": "T_WECOM_URL"}},
            {"id": "wecom-text", "via": {"channel": "wecom", "url_env": "T_WECOM_URL", "msgtype": "text"}},
            {
                "id": "dingtalk",
                "via": {"channel": "dingtalk", "url_env": "T_DING_URL", "secret_env": "T_DING_SEC"},
            },
            {
                "id": "sms",
                "via": {
                    "channel": "sms",
                    "url": f"{base}/sms",
                    "credentials": {"token": "T_SMS_TOKEN"},
                    "headers": {"Authorization": "Bearer {token}"},
                    "body": {"mobile": "{phone}", "content": "{text}", "sign": "交通执法"},
                    "phones": ["13800000001"],
                    "success": {"status": [200], "json_field": "code", "equals": "0"},
                },
            },
            {
                "id": "hook",
                "via": {"channel": "webhook", "url": f"{base}/hook", "secret_env": "T_HOOK_SECRET"},
            },
            {
                "id": "mail",
                "via": {
                    "channel": "email",
                    "host": "127.0.0.1",
                    "port": self.mailbox_port,
                    "username": SMTP_USER,
                    "password_env": "T_SMTP_PASSWORD",
                    "ca_file": str(self.cert),
                    "sender": "wo@example.gov.cn",
                    "to": ["zhihui@example.gov.cn"],
                },
                "quiet_hours": {"start": "22:00", "end": "07:30"},
            },
        ]
        document: dict[str, Any] = {
            "console_url": "https://console.example/orders/{order_id}",
            "receivers": receivers,
            "route": {"routes": [{"match": {"level": ["leadership"]}, "receivers": ["wecom", "dingtalk"]}]},
            "backoff": {"first_seconds": 30, "max_seconds": 120},
            "attempts": 5,
            **overrides,
        }
        return NotificationPolicy.model_validate(document)

    mailbox_port: int = 0

    def notifier(
        self,
        policy: NotificationPolicy,
        engine: Engine | None = None,
        timeout_s: float = 5,
        lease: timedelta = LEASE,
    ) -> Notifier:
        channels = build_channels(self.env, self.clock, timeout_s=timeout_s)
        names = {"squad-1": "执法一中队", "command-center": "指挥中心"}
        store = NotificationStore(engine or self.engine)
        return Notifier(store, policy, NotifyRouter(policy), channels, names, lease=lease)

    def run(self, notifier: Notifier) -> list[Sent]:
        return asyncio.run(notifier.run(self.clock))


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> Iterator[World]:
    probe = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
    robots = Robots(dingtalk_secret=dingtalk_secret_whose_sign_needs_escaping(int(probe.timestamp() * 1000)))
    server = RobotServer(robots).start()
    mailbox = Mailbox()
    controller, cert = smtp_server(tmp_path, mailbox)
    env = {
        "T_WECOM_URL": f"{server.base}/cgi-bin/webhook/send?key={WECOM_KEY}",
        "T_DING_URL": f"{server.base}/robot/send?access_token={DINGTALK_TOKEN}",
        "T_DING_SEC": robots.dingtalk_secret,
        "T_SMS_TOKEN": SMS_TOKEN,
        "T_HOOK_SECRET": WEBHOOK_SECRET,
        "T_SMTP_PASSWORD": SMTP_PASSWORD,
    }
    found = World(engine, robots, server, mailbox, env, cert, Clock(probe))
    found.mailbox_port = controller.port
    yield found
    controller.stop()
    server.stop()


def escalate(world: World, created: datetime = CREATED, at: datetime = LATER) -> str:
    repository = WorkOrderRepository(world.engine)
    order_id = dispatched_order(repository, created)
    Escalations(repository, POLICY.deadlines).fire(at)
    return order_id


def attempt_log(world: World, order_id: str) -> dict[str, list[tuple[str, str | None]]]:
    return {
        n["receiver"]: [(a["outcome"], a["response_code"]) for a in n["attempt_log"]]
        for n in ApiStore(world.engine).notifications(order_id)
    }
