"""What the console shows of an order, computed from the policy's own rules: time left, the
card (processors/cards), the deadlines and how they were counted, the actions offered
(processors/lifecycle)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from workorder_pipeline.api.auth import Principal
from workorder_pipeline.api.console import labels
from workorder_pipeline.processors import time_texts
from workorder_pipeline.processors.calendar import WorkCalendar
from workorder_pipeline.processors.cards import due_cards
from workorder_pipeline.processors.lifecycle import offered
from workorder_pipeline.schemas.commands import CommandAction
from workorder_pipeline.schemas.policy import Policy
from workorder_pipeline.schemas.workflow import CardLevel
from workorder_pipeline.schemas.workorder import WorkOrder, WorkOrderStatus

#: The actions the order page may offer, in the order they are shown.
ORDER_ACTIONS = (
    CommandAction.accept,
    CommandAction.start,
    CommandAction.feedback,
    CommandAction.return_,
    CommandAction.request_extension,
    CommandAction.close,
    CommandAction.approve_extension,
    CommandAction.reject_extension,
    CommandAction.reassign,
    CommandAction.reopen,
)


@dataclass(frozen=True, slots=True)
class OrderView:
    order: WorkOrder
    status: str
    time_left: str
    overdue: bool
    #: "黄牌" / "红牌" / "" (its text is shown, not only its colour).
    card: str
    card_level: str


def order_view(order: WorkOrder, now: datetime, policy: Policy, calendar: WorkCalendar) -> OrderView:
    closed = order.status is WorkOrderStatus.closed
    left = (order.due_at - now).total_seconds()
    if closed:
        time_left = "已办结" + (
            "（按期）" if order.closed_on_time else "（超期）" if order.closed_on_time is False else ""
        )
    elif order.status is WorkOrderStatus.returned:
        time_left = "已退回，计时暂停"
    else:
        time_left = time_texts.time_left(left)
    # Every card due by now for this deadline (none fired before: the console only reads).
    levels = {
        card.level for card in due_cards(order.status, order.due_at, policy.deadlines.cards, calendar, now)
    }
    level = CardLevel.red if CardLevel.red in levels else CardLevel.yellow if levels else None
    return OrderView(
        order=order,
        status=labels.STATUS[order.status],
        time_left=time_left,
        overdue=not closed and order.status is not WorkOrderStatus.returned and left < 0,
        card=labels.CARD[level] if level else "",
        card_level=level.value if level else "",
    )


def offered_actions(principal: Principal, order: WorkOrder) -> list[CommandAction]:
    """The actions this officer may send about the order now (none for read-only roles)."""
    acting = principal.acting_unit
    if not principal.may_act or acting is None:
        return []
    return [a for a in ORDER_ACTIONS if offered(a, acting, order.unit, order.status)]


def deadline_notes(order: WorkOrder) -> list[str]:
    """How the deadline was counted, in words."""
    notes = []
    if order.working_days is not None:
        notes.append(f"办理时限 {order.working_days} 个工作日（按国务院公布的节假日安排计算）")
    else:
        hours = (order.due_at - order.created_at) / timedelta(hours=1)
        notes.append(f"办理时限按小时计算（登记至期限约 {hours:.1f} 小时）")
    if order.deadline_provisional:
        notes.append("当年节假日安排尚未公布，期限为暂定，公布后重新计算")
    if order.extended_working_days or order.extended_hours:
        notes.append(f"已批准延期：{order.extended_working_days} 个工作日，{order.extended_hours:g} 小时")
    if order.returned_seconds:
        notes.append(f"退回等待改派的 {time_texts.duration_text(order.returned_seconds)} 不计入办理时间")
    if order.rework_count:
        notes.append(f"已重办 {order.rework_count} 次")
    return notes
