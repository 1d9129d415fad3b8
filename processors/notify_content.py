"""What a notification says: short Chinese text from templates. Only the order's id, kind,
unit, time left (China time) and a link to it in the console; never a complainant's name or
phone (the order's sources are never read), and the plate only where the policy allows it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from workorder_pipeline.processors.time_texts import time_left
from workorder_pipeline.schemas.notifications import NotificationLevel
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.times import CHINA_STANDARD_TIME

LEVEL_TITLES = {
    NotificationLevel.reminder: "办理提醒",
    NotificationLevel.yellow: "黄牌预警",
    NotificationLevel.red: "红牌警示",
    NotificationLevel.overdue: "超期督办",
    NotificationLevel.leadership: "挂牌督办",
    NotificationLevel.acceptance_overdue: "签收超时",
    NotificationLevel.new_urgent_order: "紧急工单",
    NotificationLevel.extension_decided: "延期审批结果",
    NotificationLevel.delivery_failed: "通知发送失败",
}

KIND_NAMES = {
    SignalKind.vehicle_alarm: "车辆报警",
    SignalKind.suspect: "疑似违规",
    SignalKind.checkin_failure: "打卡异常",
    SignalKind.complaint: "群众投诉",
}

#: ``{title}`` etc. are filled by ``render``; nothing else reaches the text.
TEMPLATE = (
    "【{title}】工单 {order_id}（{kind}，{unit}）{time_left}，办理期限 {due}（北京时间）。{plate}查看：{link}"
)
DECISION_TEMPLATE = (
    "【{title}】工单 {order_id}（{kind}，{unit}）的延期申请{decision}，{due}（北京时间），{time_left}。"
    "{plate}查看：{link}"
)
FAILED_TEMPLATE = (
    "【{title}】工单 {order_id} 的{about}通知未能送达接收方 {receiver}（{attempts} 次尝试）。查看：{link}"
)


@dataclass(frozen=True, slots=True)
class NotifyOrder:
    """The order as a notification may show it."""

    order_id: str
    kind: SignalKind
    unit_name: str
    due_at: datetime
    plate: str | None = None


@dataclass(frozen=True, slots=True)
class NotificationText:
    title: str
    text: str
    #: The same for channels that render markdown (robots): the link clickable.
    markdown: str


def render(
    level: NotificationLevel, order: NotifyOrder, console_url: str, now: datetime, show_plate: bool
) -> NotificationText:
    title = LEVEL_TITLES[level]
    link = console_url.replace("{order_id}", order.order_id)
    due = order.due_at.astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m-%d %H:%M")
    plate = f"车牌 {order.plate}。" if show_plate and order.plate else ""
    fields = {
        "title": title,
        "order_id": order.order_id,
        "kind": KIND_NAMES[order.kind],
        "unit": order.unit_name,
        "time_left": time_left((order.due_at - now).total_seconds()),
        "due": due,
        "plate": plate,
    }
    text = TEMPLATE.format(**fields, link=link)
    markdown = "**" + TEMPLATE.format(**fields, link=f"[{order.order_id}]({link})").replace("】", "】**", 1)
    return NotificationText(title, text, markdown)


def render_decision(
    approved: bool, order: NotifyOrder, console_url: str, now: datetime, show_plate: bool
) -> NotificationText:
    """An extension decision: 批准 with the deadline it set (``order.due_at``), or 驳回 with
    the deadline unchanged."""
    title = LEVEL_TITLES[NotificationLevel.extension_decided]
    link = console_url.replace("{order_id}", order.order_id)
    fields = {
        "title": title,
        "order_id": order.order_id,
        "kind": KIND_NAMES[order.kind],
        "unit": order.unit_name,
        "decision": "已批准" if approved else "被驳回",
        "due": ("新的办理期限 " if approved else "办理期限仍为 ") + _china(order.due_at),
        "time_left": time_left((order.due_at - now).total_seconds()),
        "plate": f"车牌 {order.plate}。" if show_plate and order.plate else "",
    }
    text = DECISION_TEMPLATE.format(**fields, link=link)
    markdown = "**" + DECISION_TEMPLATE.format(**fields, link=f"[{order.order_id}]({link})").replace(
        "】", "】**", 1
    )
    return NotificationText(title, text, markdown)


def _china(moment: datetime) -> str:
    return moment.astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m-%d %H:%M")


def render_failure(
    about: NotificationLevel, order_id: str, receiver: str, attempts: int, console_url: str
) -> NotificationText:
    title = LEVEL_TITLES[NotificationLevel.delivery_failed]
    link = console_url.replace("{order_id}", order_id)
    fields = {
        "title": title,
        "order_id": order_id,
        "about": LEVEL_TITLES[about],
        "receiver": receiver,
        "attempts": attempts,
    }
    text = FAILED_TEMPLATE.format(**fields, link=link)
    markdown = "**" + FAILED_TEMPLATE.format(**fields, link=f"[{order_id}]({link})").replace("】", "】**", 1)
    return NotificationText(title, text, markdown)
