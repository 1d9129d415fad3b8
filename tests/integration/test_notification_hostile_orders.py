"""A notification about an order whose fields are the worst a complainant can type: a
10 KB summary of emoji and markup, a place holding markdown and HTML for the robots'
markdown, an enterprise name with CRLF and a Bcc header for SMTP. None of them reaches any
channel (the templates take the order's id, kind, unit, deadline and plate only), every
message stays within its platform's size, and the mail has only the headers we set."""

from __future__ import annotations

import json
from datetime import UTC, timedelta

import pytest

from tests.integration.notify_world import CREATED, LATER, World
from tests.integration.notify_world import world as world  # the fixture
from tests.integration.test_escalations import POLICY, TOPICS
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.services.escalations import Escalations
from workorder_pipeline.services.intake import InboundMessage, Intake
from workorder_pipeline.storage.repository import WorkOrderRepository

pytestmark = pytest.mark.integration

PLACE = "[点此处理](javascript:alert(1)) <img src=x onerror=alert(1)> **加粗** # 标题"
ENTERPRISE = "甲运输公司\r\nBcc: attacker@example.com\r\nSubject: 伪造"
SUMMARY = ("🚕💥" * 2000 + "<script>alert(1)</script>` ``` |表格|")[:10_000]


def _hostile_complaint(world: World) -> str:
    repository = WorkOrderRepository(world.engine)
    complaint = {
        "schema": "complaint/1",
        "ticket_id": "JS12328-HOSTILE-0001",
        "channel": "12328",
        "received_at": CREATED.isoformat(),
        "due_at": (CREATED + timedelta(hours=24)).isoformat(),
        "category": "refusal",
        "subject": {
            "plate": "苏F12345",
            "enterprise_name": ENTERPRISE,
            "place": PLACE,
            "region_code": "320682",
        },
        "summary": SUMMARY,
        "complainant": {"name": "顾晓明", "phone": "13962718304"},
        "urgent": True,
    }
    raw = json.dumps(complaint, ensure_ascii=False).encode()
    intake = Intake(compile_policy(POLICY), repository, TOPICS.inbound())
    result = intake.handle([InboundMessage(TOPICS.complaints, 0, 0, None, raw)], CREATED)
    (order,) = result.created
    intake.dispatched([order], CREATED)
    Escalations(repository, POLICY.deadlines).fire(LATER)
    return order.id


def test_an_orders_hostile_text_reaches_no_channel_and_no_mail_header(world: World) -> None:
    order_id = _hostile_complaint(world)
    stored = WorkOrderRepository(world.engine).get(order_id)
    assert stored is not None and stored.subject.place == PLACE  # kept as typed: the console escapes it
    everyone = ["wecom", "wecom-text", "dingtalk", "sms", "hook", "mail"]
    policy = world.policy(route={"receivers": everyone}, show_plate=True)
    world.clock.now = LATER.astimezone(UTC)  # 20:00 China time: nobody's quiet hours
    sent = world.run(world.notifier(policy))
    assert sent and {s.outcome.value for s in sent} == {"delivered"}, sent
    bodies = [r.body.decode() for r in world.robots.received]
    mails = world.mailbox.messages
    assert len(mails) == len(sent) // len(everyone)
    shown = [*bodies, *(f"{m.items()}{m.get_content()}" for m in mails)]
    for text in shown:
        for hostile in ("javascript:", "onerror", "Bcc", "attacker", "🚕", "<script>", "伪造", "甲运输公司"):
            assert hostile not in text, (hostile, text[:300])
        assert "苏F12345" in text  # what the templates do take (show_plate) arrives
    for mail in mails:
        assert sorted(mail.keys()) == sorted(
            [
                "From",
                "To",
                "Subject",
                "Message-ID",
                "Content-Type",
                "Content-Transfer-Encoding",
                "MIME-Version",
            ]
        ), mail.keys()
        assert "\n" not in str(mail["Subject"]) and str(mail["Subject"]).endswith(order_id)
    for robot in world.robots.of("/cgi-bin/webhook/send"):  # WeCom's limits: 2,048 / 4,096 bytes
        assert len(robot.body) < 2048
