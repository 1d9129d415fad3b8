"""The figures a supervisor is judged by: their names, what one order contributes to them,
and the policy's score weights. What each figure counts is defined in processors/figures.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workorder_pipeline.schemas.commands import CallbackResult
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import Priority, WorkOrderStatus


class Figure(StrEnum):
    accepted_on_time = "accepted_on_time"  # 按时签收率
    closed = "closed"  # 办结率
    closed_on_time = "closed_on_time"  # 按时办结率
    satisfied = "satisfied"  # 满意率
    reworked = "reworked"  # 发回重办率
    returned = "returned"  # 退单率
    extended = "extended"  # 延期率

    @property
    def label_zh(self) -> str:
        return FIGURE_LABELS_ZH[self]

    @property
    def higher_is_better(self) -> bool:
        """Reworks, returns and extensions count against a unit: the score takes 1 - rate."""
        return self not in _LOWER_IS_BETTER


FIGURE_LABELS_ZH: dict[Figure, str] = {
    Figure.accepted_on_time: "按时签收率",
    Figure.closed: "办结率",
    Figure.closed_on_time: "按时办结率",
    Figure.satisfied: "满意率",
    Figure.reworked: "发回重办率",
    Figure.returned: "退单率",
    Figure.extended: "延期率",
}

_LOWER_IS_BETTER = frozenset({Figure.reworked, Figure.returned, Figure.extended})


@dataclass(frozen=True, slots=True)
class OrderFacts:
    """What one order contributes to the figures, as the database holds it now."""

    id: str
    #: The unit holding the order now (a returned order waiting to be re-routed: the command center).
    unit: str
    kind: SignalKind
    priority: Priority
    status: WorkOrderStatus
    created_at: datetime
    #: 签收时限 of the unit holding the order (restarts on reassignment); None: no clock.
    accept_due_at: datetime | None
    #: When the unit holding the order accepted it (since it was last dispatched); None: not yet.
    accepted_at: datetime | None
    #: The deadline in force (extensions and the time spent returned included).
    due_at: datetime
    #: The latest closure while the order is closed; None while it is open (reopened included).
    closed_at: datetime | None
    #: Whether the latest closure was at or before the deadline in force then.
    closed_on_time: bool | None
    #: The latest callback to the complainant (a complaint's closure or its unsatisfied reopening).
    callback: CallbackResult | None
    #: Times sent back to be done again (重办).
    rework_count: int
    #: Times returned (退单) by a unit, ever.
    returns: int
    #: An extension (延期) granted, by approval of a request or by the command center.
    extended: bool


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ScoreWeights(_Model):
    """评分: the weight of each figure in a unit's score (0 leaves a figure out). Figures whose
    rate is better low (reworks, returns, extensions) count as 1 - rate."""

    accepted_on_time: float = Field(default=15, ge=0, le=1000)
    closed: float = Field(default=20, ge=0, le=1000)
    closed_on_time: float = Field(default=25, ge=0, le=1000)
    satisfied: float = Field(default=25, ge=0, le=1000)
    reworked: float = Field(default=5, ge=0, le=1000)
    returned: float = Field(default=5, ge=0, le=1000)
    extended: float = Field(default=5, ge=0, le=1000)

    @model_validator(mode="after")
    def _some_weight(self) -> ScoreWeights:
        if not any(self.weight(figure) > 0 for figure in Figure):
            raise ValueError("give at least one figure a weight above 0, or no score could be made")
        return self

    def weight(self, figure: Figure) -> float:
        return float(getattr(self, figure.value))


class FiguresPolicy(_Model):
    """policy/figures.yaml."""

    score: ScoreWeights = ScoreWeights()
