"""Chinese names of the report's codes. A code with no name here shows as itself."""

from __future__ import annotations

from workorder_pipeline.processors.figures import ALL_UNITS
from workorder_pipeline.schemas.report import MonthlyReport

LABELS: dict[str, str] = {
    # kinds of signal
    "vehicle_alarm": "车辆报警",
    "suspect": "疑似名单",
    "checkin_failure": "查岗失败",
    "complaint": "投诉",
    # complaint categories
    "refusal": "拒载",
    "detour": "绕路",
    "overcharging": "乱收费",
    "illegal_operation": "非法营运",
    "service_attitude": "服务态度",
    "driving_school": "驾校培训",
    "vehicle_repair": "机动车维修",
    "waterway": "水路运输",
    "enforcement_conduct": "执法行为",
    "other": "其他",
    # suppression reasons
    "mute_window": "静默时段",
    "whitelist": "白名单",
    "threshold": "阈值以下",
    "minor_violation": "首违轻微免罚",
    "stale": "过期信号",
    # dead-letter reasons
    "not_utf8": "非 UTF-8 编码",
    "not_json": "非 JSON",
    "not_an_object": "非 JSON 对象",
    "missing_contract": "缺少契约名",
    "unknown_contract": "未知契约",
    "wrong_topic": "主题不符",
    "bad_plate": "车牌无效",
    "missing_offset": "时间缺少时区",
    "invalid_field": "字段无效",
    "too_large": "消息过大",
    "duplicate_key": "字段重复",
    "implausible_time": "时间不合理",
    "empty_message": "空消息",
    "invalid_character": "非法字符",
    "too_complex": "结构过深",
    "unprocessable": "无法处理",
    # return reasons
    "not_our_jurisdiction": "属地不符",
    "unclear_ownership": "权属不清",
    "overlapping_duties": "职能交叉",
    "insufficient_information": "信息不全",
    "duplicate": "重复",
    "misrouted": "派发错误",
    # statuses
    "registered": "已登记",
    "dispatched": "已派发",
    "accepted": "已签收",
    "in_progress": "办理中",
    "feedback_submitted": "已反馈",
    "returned": "已退回",
    "closed": "已办结",
    # escalation levels
    "overdue": "逾期督办",
    "leadership": "领导督办",
    "accept_overdue": "签收超时",
    # the totals over every unit (each unit's own name is the policy's: unit_name below)
    ALL_UNITS: "全部单位",
}

#: Marks a unit shown by its id: it is no longer in policy/units.yaml (UNKNOWN_UNIT_NOTE).
UNKNOWN_UNIT = "※"
UNKNOWN_UNIT_NOTE = "※ 该单位已不在单位配置（policy/units.yaml）中，显示其代码。"


def unit_name(report: MonthlyReport, unit: str) -> str:
    """The unit's name as the policy gave it when the report was made; its id marked with
    UNKNOWN_UNIT when the policy no longer has it."""
    if unit == ALL_UNITS or not unit:
        return zh(unit)
    name = report.unit_names.get(unit)
    return name if name else f"{unit}{UNKNOWN_UNIT}"


def zh(code: str) -> str:
    """The Chinese name of ``code``; "（无）" for an empty one."""
    if not code:
        return "（无）"
    return LABELS.get(code, code)
