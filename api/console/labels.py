"""What the console calls things, in Simplified Chinese: display names of the vocabularies
(the vocabularies and their rules stay in schemas/ and processors/). Every member of each
enum has a name here: tests/console check that none is missing."""

from __future__ import annotations

from workorder_pipeline.schemas.commands import (
    CallbackResult,
    CommandAction,
    Disposition,
    LifecycleEventName,
    RefusalCode,
    ReturnReason,
)
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workflow import CardLevel
from workorder_pipeline.schemas.workorder import PipelineEventName, Priority, WorkOrderStatus

STATUS = {
    WorkOrderStatus.registered: "已登记",
    WorkOrderStatus.dispatched: "待签收",
    WorkOrderStatus.accepted: "已签收",
    WorkOrderStatus.in_progress: "核查中",
    WorkOrderStatus.feedback_submitted: "已反馈",
    WorkOrderStatus.returned: "已退回",
    WorkOrderStatus.closed: "已办结",
}

#: The squad's start page: its orders in these groups, in this order.
SQUAD_GROUPS: tuple[tuple[str, str, tuple[WorkOrderStatus, ...]], ...] = (
    ("pending", "待签收", (WorkOrderStatus.dispatched,)),
    ("working", "办理中", (WorkOrderStatus.accepted, WorkOrderStatus.in_progress)),
    ("reported", "已反馈", (WorkOrderStatus.feedback_submitted,)),
    ("returned", "已退回", (WorkOrderStatus.returned,)),
)

KIND = {
    SignalKind.vehicle_alarm: "车辆报警",
    SignalKind.suspect: "非法营运嫌疑",
    SignalKind.checkin_failure: "签到异常",
    SignalKind.complaint: "投诉举报",
}

PRIORITY = {Priority.P1: "紧急", Priority.P2: "较急", Priority.P3: "一般"}

ACTION = {
    CommandAction.accept: "签收",
    CommandAction.start: "开始核查",
    CommandAction.feedback: "提交反馈",
    CommandAction.close: "办结",
    CommandAction.return_: "退回",
    CommandAction.reopen: "重新打开",
    CommandAction.reassign: "改派",
    CommandAction.extend: "延长期限",
    CommandAction.request_extension: "申请延期",
    CommandAction.approve_extension: "批准延期",
    CommandAction.reject_extension: "驳回延期",
}

DISPOSITION = {
    Disposition.case_filed: "立案查处",
    Disposition.rectification_ordered: "责令整改",
    Disposition.warning_minor_violation: "轻微违法免罚（教育警示）",
    Disposition.unfounded: "查无实据",
    Disposition.transferred: "移交",
}

RETURN_REASON = {
    ReturnReason.not_our_jurisdiction: "属地不符",
    ReturnReason.unclear_ownership: "权属不清",
    ReturnReason.overlapping_duties: "职能交叉",
    ReturnReason.insufficient_information: "信息不全",
    ReturnReason.duplicate: "重复工单",
    ReturnReason.misrouted: "派发错误",
}

CALLBACK = {
    CallbackResult.satisfied: "满意",
    CallbackResult.basically_satisfied: "基本满意",
    CallbackResult.unsatisfied: "不满意（重办）",
    CallbackResult.unreachable: "联系不上",
}

CARD = {CardLevel.yellow: "黄牌", CardLevel.red: "红牌"}

#: The action forms' fields, as the forms label them (the fields named in a refusal).
FORM_FIELD = {
    "note": "情况说明",
    "disposition": "处理结果",
    "reason": "退回理由",
    "to_unit": "改派单位",
    "colleague": "共同执法人员",
    "officer_ids": "共同执法人员",
    "extension": "延期时长",
    "extension.hours": "延期小时数",
    "extension.working_days": "延期工作日数",
    "hours": "延期小时数",
    "working_days": "延期工作日数",
    "callback": "回访结果",
    "callback.result": "回访结果",
    "attempts": "回访次数",
    "callback.attempts": "回访次数",
}

EVENT: dict[str, str] = {
    **{
        PipelineEventName.registered: "登记",
        PipelineEventName.merged: "合并线索",
        PipelineEventName.dispatched: "派发",
        PipelineEventName.reminder_sent: "催办提醒",
        PipelineEventName.escalated: "督办",
        PipelineEventName.deadline_changed: "期限变更",
    },
    **{
        LifecycleEventName.accepted: "签收",
        LifecycleEventName.started: "开始核查",
        LifecycleEventName.feedback_submitted: "提交反馈",
        LifecycleEventName.closed: "办结",
        LifecycleEventName.returned: "退回",
        LifecycleEventName.rework_requested: "退回重办",
        LifecycleEventName.reopened: "重新打开",
        LifecycleEventName.reassigned: "改派",
        LifecycleEventName.extended: "延长期限",
        LifecycleEventName.extension_requested: "申请延期",
        LifecycleEventName.extension_approved: "批准延期",
        LifecycleEventName.extension_rejected: "驳回延期",
        LifecycleEventName.command_rejected: "操作被拒绝",
    },
}

REFUSAL = {
    RefusalCode.forbidden: "无权进行此操作",
    RefusalCode.unknown_order: "工单不存在",
    RefusalCode.invalid_state: "工单当前状态不允许此操作",
    RefusalCode.no_change: "没有变化",
    RefusalCode.not_later: "新期限须晚于原期限",
    RefusalCode.missing_field: "缺少必填项",
    RefusalCode.too_few_officers: "执法人员人数不足",
    RefusalCode.callback_incomplete: "回访未完成",
    RefusalCode.unknown_unit: "没有这个单位",
    RefusalCode.too_late: "已过期限，不能申请延期",
    RefusalCode.extension_pending: "已有延期申请待审批",
    RefusalCode.no_extension_pending: "没有待审批的延期申请",
    RefusalCode.over_limit: "超过延期次数或时长上限",
    RefusalCode.exceeds_request: "批准的时长超过申请",
    RefusalCode.reason_not_allowed: "该退回理由不在允许范围内",
    RefusalCode.needs_new_feedback: "重办工单须先重新反馈",
    RefusalCode.unprocessable: "操作无法处理",
}

#: A signal's fields on the order page (``name`` or ``object.name`` as the contracts in
#: docs/ and schemas/inbound.py spell them); a field not named here shows its contract name.
SIGNAL_FIELD = {
    "alarm_id": "报警编号",
    "alarm_type": "报警类型",
    "answer_window_s": "应答时限（秒）",
    "category": "投诉类别",
    "channel": "受理渠道",
    "check_id": "查岗编号",
    "checkpoints": "途经卡口",
    "due_at": "办理期限",
    "duration_s": "持续时长（秒）",
    "enterprise.id": "企业编号",
    "enterprise.name": "企业名称",
    "entry_id": "名单条目编号",
    "issued_at": "下发时间",
    "level": "等级",
    "list_date": "名单日期",
    "location.lat": "纬度",
    "location.lon": "经度",
    "location.region_code": "行政区划代码",
    "location.road": "道路",
    "occurred_at": "发生时间",
    "outcome": "查岗结果",
    "pass_count": "通行次数",
    "plate": "车牌号",
    "plate_color": "车牌颜色",
    "platform_id": "平台编号",
    "received_at": "受理时间",
    "responded_at": "应答时间",
    "score": "嫌疑评分",
    "speed_kmh": "车速（公里/小时）",
    "speed_limit_kmh": "限速（公里/小时）",
    "subject.enforcement_unit": "执法单位",
    "subject.enterprise_id": "企业编号",
    "subject.enterprise_name": "企业名称",
    "subject.place": "地点",
    "subject.plate": "车牌号",
    "subject.region_code": "行政区划代码",
    "summary": "投诉内容",
    "suspect_type": "嫌疑类型",
    "ticket_id": "热线工单号",
    "urgent": "紧急",
    "vehicle_class": "车辆类别",
    "vehicles_moving": "在途车辆",
    "window_days": "统计天数",
}
