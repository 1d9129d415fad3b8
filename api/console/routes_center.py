"""The command center's page: what waits for the duty officers. Each order links to its page,
where the actions the command center may take on it are offered."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from workorder_pipeline.api.auth import Role
from workorder_pipeline.api.console.render import page
from workorder_pipeline.api.console.session import ConsoleError, Parts, Reader
from workorder_pipeline.api.console.views import order_view
from workorder_pipeline.api.deps import Api
from workorder_pipeline.schemas.records import OrderQuery
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import COMMAND_CENTER, WorkOrderStatus

router = APIRouter(prefix="/console")

S = WorkOrderStatus
#: Orders shown per queue, newest first: the page stays quick however many wait.
QUEUE_LIMIT = 50
#: The command center's queues: (anchor, heading, which orders).
QUEUES: tuple[tuple[str, str, OrderQuery], ...] = (
    (
        "manual",
        "人工分派（无匹配路由）",
        OrderQuery(unit=COMMAND_CENTER, statuses=(S.dispatched, S.accepted), limit=QUEUE_LIMIT),
    ),
    ("returned", "退回待改派", OrderQuery(statuses=(S.returned,), limit=QUEUE_LIMIT)),
    ("extensions", "延期申请待审批", OrderQuery(extension_pending=True, limit=QUEUE_LIMIT)),
    (
        "callbacks",
        "投诉待回访",
        OrderQuery(kind=SignalKind.complaint, status=S.feedback_submitted, limit=QUEUE_LIMIT),
    ),
    ("overdue", "已超期", OrderQuery(overdue=True, limit=QUEUE_LIMIT)),
)


@router.get("/center", include_in_schema=False)
def center(request: Request, parts: Parts, api: Api, who: Reader) -> Response:
    if who.principal.role is not Role.command_center:
        raise ConsoleError(403, "指挥中心页面仅供值班员使用", who)
    now = parts.clock()
    queues = {
        key: [order_view(o, now, parts.policy, parts.calendar) for o in api.store.orders(query, now).orders]
        for key, _, query in QUEUES
    }
    sections = [(key, text) for key, text, _ in QUEUES]
    return page(request, parts, who, "center.html", {"sections": sections, "queues": queues})
