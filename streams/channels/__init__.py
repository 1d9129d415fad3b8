"""The notification channels: one narrow transport each (services.notifications.Channel).
Each sends, never raises, and says what happened: delivered, rejected by the platform,
unreachable (retried) or misconfigured (a secret's environment variable is unset)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from workorder_pipeline.schemas.notifications import ChannelType
from workorder_pipeline.services.notifications import Channel
from workorder_pipeline.streams.channels.email import EmailChannel
from workorder_pipeline.streams.channels.http import HttpSender
from workorder_pipeline.streams.channels.robots import DingtalkChannel, WecomChannel
from workorder_pipeline.streams.channels.sms import SmsChannel
from workorder_pipeline.streams.channels.webhook import WebhookChannel

#: Seconds a channel waits for any one step of a platform's answer; an exchange (a request,
#: an SMTP conversation) ends by ``deadline.deadline_for(TIMEOUT_S)``, a whole send one
#: exchange's time before services.notifications.LEASE ends (``deadline.send_deadline``).
TIMEOUT_S = 15.0


def build_channels(
    environ: Mapping[str, str], clock: Callable[[], datetime], timeout_s: float = TIMEOUT_S
) -> dict[ChannelType, Channel]:
    http = HttpSender(timeout_s)
    return {
        ChannelType.wecom: WecomChannel(http, environ),
        ChannelType.dingtalk: DingtalkChannel(http, environ, clock),
        ChannelType.sms: SmsChannel(http, environ),
        ChannelType.email: EmailChannel(environ, timeout_s),
        ChannelType.webhook: WebhookChannel(http, environ, clock),
    }
