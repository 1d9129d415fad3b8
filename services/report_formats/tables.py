"""The report as tables in Simplified Chinese: the one wording every format renders (pure).

A cell holds text or a number; its column's ``Kind`` says how a person reads it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from workorder_pipeline.schemas.figures import Figure
from workorder_pipeline.schemas.report import (
    Compared,
    FigureValue,
    MonthlyReport,
    Recurrence,
    SignalsAndOrders,
)
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.times import for_people
from workorder_pipeline.services.report_formats.labels import UNKNOWN_UNIT, UNKNOWN_UNIT_NOTE, unit_name, zh

Cell = str | int | float | None


class Kind(StrEnum):
    text = "text"
    integer = "integer"
    #: Hours, one decimal.
    hours = "hours"
    #: A share in [0, 1], shown as a percentage with one decimal.
    percent = "percent"
    #: A score out of 100, two decimals.
    score = "score"


@dataclass(frozen=True, slots=True)
class Table:
    section: str
    title: str
    #: Excel sheet name (at most 31 characters, unique).
    sheet: str
    headers: list[str]
    kinds: list[Kind]
    rows: list[list[Cell]]
    note: str = ""
    #: Said instead of an empty table.
    empty: str = "本月无数据。"
    extra: dict[str, str] = field(default_factory=dict)


def show(value: Cell, kind: Kind) -> str:
    """How a cell reads in HTML and PDF."""
    if value is None:
        return "—"
    if kind is Kind.percent and isinstance(value, int | float):
        return f"{100 * value:.1f}%"
    if kind is Kind.hours and isinstance(value, int | float):
        return f"{value:.1f}"
    if kind is Kind.score and isinstance(value, int | float):
        return f"{value:.2f}"
    return str(value)


INFLOW, CLOSURE, RECURRING, RETURNS = "一、来量", "二、办结情况", "三、反复出现的问题", "四、退单与错派"
_KINDS = [kind for kind in SignalKind]


def report_tables(report: MonthlyReport) -> list[Table]:
    tables = [*_inflow(report), *_closure(report), *_recurring(report), *_returns(report)]
    return [_unknown_units_noted(table) for table in tables]


#: Columns that show a unit (unit_name).
_UNIT_HEADERS = frozenset({"单位", "退单单位"})


def _unknown_units_noted(table: Table) -> Table:
    """The table with UNKNOWN_UNIT_NOTE under it when a unit of it is shown by its id."""
    columns = [i for i, header in enumerate(table.headers) if header in _UNIT_HEADERS]
    if not any(str(row[i]).endswith(UNKNOWN_UNIT) for row in table.rows for i in columns):
        return table
    return replace(table, note=f"{table.note} {UNKNOWN_UNIT_NOTE}".strip())


def _compared(section: str, title: str, sheet: str, what: str, rows: list[Compared]) -> Table:
    return Table(
        section,
        title,
        sheet,
        [what, "本月", "上月", "增减"],
        [Kind.text, Kind.integer, Kind.integer, Kind.integer],
        [[zh(row.key), row.current, row.previous, row.current - row.previous] for row in rows],
    )


def _both(title: str, sheet: str, what: str, rows: list[SignalsAndOrders], note: str) -> Table:
    return Table(
        INFLOW,
        title,
        sheet,
        [what, "本月信号", "上月信号", "本月工单", "上月工单"],
        [Kind.text, Kind.integer, Kind.integer, Kind.integer, Kind.integer],
        [[zh(r.key), r.signals, r.signals_previous, r.orders, r.orders_previous] for r in rows],
        note=note,
    )


def _inflow(report: MonthlyReport) -> list[Table]:
    inflow = report.inflow
    by_kind = Table(
        INFLOW,
        "信号与工单（按类型）",
        "信号与工单",
        ["类型", "本月信号", "上月信号", "本月工单", "上月工单"],
        [Kind.text, Kind.integer, Kind.integer, Kind.integer, Kind.integer],
        [[zh(k.kind), k.signals, k.signals_previous, k.orders, k.orders_previous] for k in inflow.by_kind],
        note="信号：收到的有效信号（含被抑制的）；工单：本月新建的工单。",
    )
    return [
        by_kind,
        _both(
            "信号与工单（按平台或渠道）",
            "信号与工单按平台",
            "平台或渠道",
            inflow.by_platform,
            "工单按登记它的信号的平台或渠道计；疑似名单没有平台，计入（无）。",
        ),
        _both("投诉与投诉工单（按类别）", "投诉按类别", "投诉类别", inflow.by_category, ""),
        _both(
            "信号与工单（按地区）",
            "信号与工单按地区",
            "地区代码",
            inflow.by_region,
            "地区为派发所依据的行政区划代码（未换算为地名）；查岗失败没有地区，计入（无）。",
        ),
        _compared(INFLOW, "被抑制的信号（按原因）", "抑制按原因", "原因", inflow.suppressed_by_reason),
        _compared(INFLOW, "死信（按原因）", "死信按原因", "原因", inflow.dead_letters_by_reason),
        _compared(INFLOW, "死信（按发布主题）", "死信按主题", "主题", inflow.dead_letters_by_publisher),
    ]


_FIGURES = list(Figure)


def _figure_cells(figures: dict[str, FigureValue]) -> list[Cell]:
    """Each figure's rate, in Figure's order (None: nothing judged, or no figures)."""
    values = [figures.get(figure.value) for figure in _FIGURES]
    return [value.value if value is not None else None for value in values]


def _closure(report: MonthlyReport) -> list[Table]:
    closure = report.closure
    rate_headers = [figure.label_zh for figure in _FIGURES]
    rate_kinds = [Kind.percent] * len(_FIGURES)
    figures = Table(
        CLOSURE,
        "各单位考核指标（本月）",
        "考核指标",
        ["单位", "工单", *rate_headers, "评分", "上月评分"],
        [Kind.text, Kind.integer, *rate_kinds, Kind.score, Kind.score],
        [
            [unit_name(report, u.unit), u.orders, *_figure_cells(u.figures), u.score, u.score_previous]
            for u in closure.units
        ],
        note="指标按本月新建工单、以报告生成时的状态计算；定义见 processors/figures.py。",
    )
    previous = Table(
        CLOSURE,
        "各单位考核指标（上月，供对比）",
        "上月指标",
        ["单位", *rate_headers],
        [Kind.text, *rate_kinds],
        [
            [unit_name(report, u.unit), *_figure_cells(u.figures_previous)]
            for u in closure.units
            if u.figures_previous
        ],
    )
    times = Table(
        CLOSURE,
        "办理时长（小时，自工单创建起）",
        "办理时长",
        ["单位", "签收中位数", "签收90分位", "办结中位数", "办结90分位"],
        [Kind.text, Kind.hours, Kind.hours, Kind.hours, Kind.hours],
        [
            [
                unit_name(report, u.unit),
                u.accept_hours_median,
                u.accept_hours_p90,
                u.close_hours_median,
                u.close_hours_p90,
            ]
            for u in closure.units
        ],
    )
    return [figures, previous, times, *_order_lists(report)]


def _order_lists(report: MonthlyReport) -> list[Table]:
    closure = report.closure
    headers = ["工单号", "单位", "类型", "办结期限", "状态"]
    kinds = [Kind.text] * 5
    overdue = Table(
        CLOSURE,
        "逾期工单（期限在本月、未按期办结）",
        "逾期工单",
        headers,
        kinds,
        [
            [o.id, unit_name(report, o.unit), zh(o.kind), for_people(o.due_at), zh(o.status)]
            for o in closure.overdue
        ],
        note=_listed(len(closure.overdue), closure.overdue_total),
    )
    escalated = Table(
        CLOSURE,
        "督办工单（本月升级）",
        "督办工单",
        [*headers, "最高级别"],
        [*kinds, Kind.text],
        [
            [o.id, unit_name(report, o.unit), zh(o.kind), for_people(o.due_at), zh(o.status), zh(o.level)]
            for o in closure.escalated
        ],
        note=_listed(len(closure.escalated), closure.escalated_total),
    )
    return [overdue, escalated]


def _listed(shown: int, total: int) -> str:
    return f"共 {total} 件，列出 {shown} 件。" if total > shown else f"共 {total} 件。"


def _recurrence_rows(rows: list[Recurrence], named: bool) -> list[list[Cell]]:
    return [
        [
            r.key,
            *([r.name] if named else []),
            *(r.per_kind.get(kind, 0) for kind in _KINDS),
            r.total,
            r.outcomes.closed,
            r.outcomes.open,
            r.outcomes.returned,
        ]
        for r in rows
    ]


def _recurring(report: MonthlyReport) -> list[Table]:
    recurring = report.recurring
    counts = [*(zh(kind) for kind in _KINDS), "合计", "已办结", "未办结", "曾退单"]
    count_kinds = [Kind.integer] * len(counts)
    return [
        Table(
            RECURRING,
            "工单最多的车辆",
            "高频车辆",
            ["车牌", *counts],
            [Kind.text, *count_kinds],
            _recurrence_rows(recurring.vehicles, named=False),
        ),
        Table(
            RECURRING,
            "工单最多的企业",
            "高频企业",
            ["企业代码", "企业名称", *counts],
            [Kind.text, Kind.text, *count_kinds],
            _recurrence_rows(recurring.enterprises, named=True),
        ),
        Table(
            RECURRING,
            "投诉类别与发生地",
            "投诉类别与地点",
            ["投诉类别", "地区代码", "地点", "工单"],
            [Kind.text, Kind.text, Kind.text, Kind.integer],
            [
                [zh(c.category), c.region_code or "（无）", c.place or "（无）", c.count]
                for c in recurring.categories_by_place
            ],
        ),
        Table(
            RECURRING,
            "查岗反复失败的企业（本月 2 次及以上）",
            "查岗反复失败",
            ["企业代码", "企业名称", "失败次数", "工单"],
            [Kind.text, Kind.text, Kind.integer, Kind.integer],
            [[c.enterprise_id, c.name or "（无）", c.failures, c.orders] for c in recurring.checkin_failures],
        ),
    ]


def _returns(report: MonthlyReport) -> list[Table]:
    returns = report.returns
    return [
        _compared(RETURNS, "退单（按原因）", "退单按原因", "原因", returns.by_reason),
        Table(
            RETURNS,
            "退单（按派发规则）",
            "退单按派发规则",
            ["派发规则", "退单单位", "退单数", "本月该规则派单"],
            [Kind.text, Kind.text, Kind.integer, Kind.integer],
            [[r.route_key, unit_name(report, r.unit), r.returned, r.orders] for r in returns.by_route],
            note="修改派发规则后，可用 wo rules replay --from … --to … --rules 目录 核对哪些工单会改派。",
        ),
    ]
