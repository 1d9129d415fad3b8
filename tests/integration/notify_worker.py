"""A worker that plans and sends notifications once, in a process of its own, for the
SIGKILL drill: ``python -m tests.integration.notify_worker CONFIG.json``.

CONFIG: database_url, policy (notifications.yaml as JSON), env (the secrets), now (ISO)."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path

from workorder_pipeline.processors.notify_routing import NotifyRouter
from workorder_pipeline.schemas.notifications import NotificationPolicy
from workorder_pipeline.services.notifications import Notifier
from workorder_pipeline.storage.database import create_engine
from workorder_pipeline.storage.notifications import NotificationStore
from workorder_pipeline.streams.channels import build_channels


def main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    now = datetime.fromisoformat(config["now"])
    policy = NotificationPolicy.model_validate(config["policy"])
    channels = build_channels(config["env"], lambda: now)
    store = NotificationStore(create_engine(config["database_url"]))
    notifier = Notifier(store, policy, NotifyRouter(policy), channels, {})
    asyncio.run(notifier.run(lambda: now))


if __name__ == "__main__":
    main(sys.argv[1])
