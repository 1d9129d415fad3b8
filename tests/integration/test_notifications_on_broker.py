"""The leader's periodic notification job end to end: ``wo run`` on Apache Kafka and
PostgreSQL, with a policy whose notifications.yaml routes new urgent orders to a signed
webhook on 127.0.0.1. One alarm published becomes a P1 order; the webhook receives it,
signed with the secret ``wo run`` read from a WO_NOTIFY_* variable, and the metrics page
counts it by channel and outcome."""

from __future__ import annotations

import json
import shutil
import signal
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.integration.notify_support import WEBHOOK_SECRET, Robots, RobotServer
from tests.integration.pipeline_support import REPO_ROOT, SAMPLES, file_lines, metric_samples, wait_for
from tests.integration.test_intake_on_broker import TIMEOUT_S, Worker
from workorder_pipeline.schemas.times import CHINA_STANDARD_TIME
from workorder_pipeline.wo.kafka_cluster import KafkaCluster

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

SECRET_VARIABLE = "WO_NOTIFY_TEST_HOOK_SECRET"


def notifications_yaml(hook_url: str) -> str:
    """New urgent orders to the webhook; everything else to nobody (the root has no receiver)."""
    policy = {
        "console_url": "https://console.example.gov.cn/orders/{order_id}",
        "attempts": 3,
        "backoff": {"first_seconds": 30, "max_seconds": 60},
        "urgent": {"levels": ["new_urgent_order"], "priorities": ["P1"]},
        "receivers": [
            {"id": "duty-hook", "via": {"channel": "webhook", "url": hook_url, "secret_env": SECRET_VARIABLE}}
        ],
        "route": {"routes": [{"match": {"level": ["new_urgent_order"]}, "receivers": ["duty-hook"]}]},
    }
    return json.dumps(policy, ensure_ascii=False)  # JSON is YAML


def night_coach_alarm_now() -> bytes:
    """The sample night-ban coach alarm (P1), as if it happened now, under an id of its own."""
    alarm = json.loads(file_lines(SAMPLES / "vehicle-alarms.jsonl")[3])
    alarm["alarm_id"] = f"IT-NOTIFY-{uuid.uuid4().hex[:8]}"
    alarm["occurred_at"] = datetime.now(UTC).astimezone(CHINA_STANDARD_TIME).isoformat(timespec="seconds")
    return json.dumps(alarm, ensure_ascii=False).encode()


@pytest.fixture
def hook_server() -> Iterator[RobotServer]:
    """A webhook receiver checking the HMAC signature (202, or 401 when it is wrong)."""
    server = RobotServer(Robots(dingtalk_secret="unused")).start()
    try:
        yield server
    finally:
        server.stop()


def test_an_urgent_order_from_an_alarm_reaches_the_webhook_once_and_is_counted(
    kafka_broker: KafkaCluster, postgres_url: str, tmp_path: Path, hook_server: RobotServer
) -> None:
    hooks = hook_server.robots
    worker = Worker(kafka_broker.bootstrap, postgres_url, tmp_path)
    policy_dir = tmp_path / "policy"
    shutil.copytree(REPO_ROOT / "policy", policy_dir)
    (policy_dir / "notifications.yaml").write_text(
        notifications_yaml(f"{hook_server.base}/hook"), encoding="utf-8"
    )
    worker.env |= {"WO_POLICY_DIR": str(policy_dir), SECRET_VARIABLE: WEBHOOK_SECRET}
    try:
        process = worker.start()
        worker.produce([(b"plate", night_coach_alarm_now())])
        (received,) = wait_for(
            lambda: hooks.of("/hook") or None,
            TIMEOUT_S,
            "the webhook to receive the new urgent order",
            describe=process.tail,
        )
        with worker.engine.connect() as conn:
            order_id, priority = conn.execute(sa.text("SELECT id, priority FROM work_order")).one()
        body = received.json()
        assert (body["work_order_id"], body["level"], priority) == (order_id, "new_urgent_order", "P1")
        assert body["text"].startswith(f"【紧急工单】工单 {order_id}（车辆报警，")
        assert received.headers["x-wo-notification-id"] == body["notification_id"]

        delivered = (("channel", "webhook"), ("outcome", "delivered"))
        wait_for(
            lambda: metric_samples(process.metrics_text(), "wo_notifications_total").get(delivered) == 1,
            TIMEOUT_S,
            'wo_notifications_total{channel="webhook",outcome="delivered"} to count it',
            describe=process.tail,
        )
        counted = metric_samples(process.metrics_text(), "wo_notifications_total")
        assert {labels: n for labels, n in counted.items() if n} == {delivered: 1}
        assert len(hooks.of("/hook")) == 1  # the webhook accepted it (signed right): not sent again
        with worker.engine.connect() as conn:
            status = conn.execute(sa.text("SELECT status FROM notification")).scalar_one()
        assert status == "sent"
        assert process.stop(signal.SIGTERM) == 0, process.tail()
    finally:
        worker.close()
