"""The monthly analysis report (研判报告): what a supervisor reads, as values. Built by
services/report.py from the database, rendered by services/report_formats (HTML, PDF, Excel).
Counts only: no complainant's name or phone is ever part of it."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from workorder_pipeline.schemas.signal import SignalKind


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Compared(_Value):
    """A count this month and the month before, under a key (a reason, a platform, ...)."""

    key: str
    current: int
    previous: int


class KindInflow(_Value):
    kind: SignalKind
    signals: int
    signals_previous: int
    orders: int
    orders_previous: int


class SignalsAndOrders(_Value):
    """Signals received and orders created under a key (a platform, a category, a region),
    this month and the month before."""

    key: str
    signals: int
    signals_previous: int
    orders: int
    orders_previous: int


class Inflow(_Value):
    by_kind: list[KindInflow]
    #: By publishing platform (alarms, check-ins) or channel (complaints); suspect lists: "".
    #: An order counts under the platform of the signal that registered it.
    by_platform: list[SignalsAndOrders]
    #: Complaints by category (投诉类别).
    by_category: list[SignalsAndOrders]
    #: By region code, the one routing used ("": none given; check-in failures have none).
    by_region: list[SignalsAndOrders]
    suppressed_by_reason: list[Compared]
    dead_letters_by_reason: list[Compared]
    #: Dead letters by the topic they were read from (who published them).
    dead_letters_by_publisher: list[Compared]


class Outcomes(_Value):
    """What became of a subject's orders of the month."""

    closed: int
    open: int
    #: Returned by a unit at least once.
    returned: int


class Recurrence(_Value):
    """A vehicle (plate) or an enterprise and its orders of the month."""

    key: str
    #: The enterprise's name as a signal gave it ("" for a plate or none given).
    name: str
    per_kind: dict[SignalKind, int]
    total: int
    outcomes: Outcomes


class CategoryPlace(_Value):
    category: str
    region_code: str
    place: str
    count: int


class RepeatedCheckins(_Value):
    enterprise_id: str
    name: str
    #: Check-in failure signals of the month.
    failures: int
    orders: int


class Recurring(_Value):
    vehicles: list[Recurrence]
    enterprises: list[Recurrence]
    categories_by_place: list[CategoryPlace]
    checkin_failures: list[RepeatedCheckins]


class RouteReturns(_Value):
    route_key: str
    #: The unit the route sent the returned orders to.
    unit: str
    returned: int
    #: Orders the route sent that month (created).
    orders: int


class Returns(_Value):
    #: Returns (退单) made in the month, by reason code.
    by_reason: list[Compared]
    by_route: list[RouteReturns]


class FigureValue(_Value):
    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


class UnitClosure(_Value):
    """A unit's figures (processors/figures.py) this month and the month before, and its times."""

    unit: str
    orders: int
    figures: dict[str, FigureValue]
    figures_previous: dict[str, FigureValue]
    score: float | None
    score_previous: float | None
    #: Hours from creation to acceptance / closure, of the month's orders accepted / closed.
    accept_hours_median: float | None
    accept_hours_p90: float | None
    close_hours_median: float | None
    close_hours_p90: float | None


class OrderLine(_Value):
    """An order listed by id (overdue or escalated): no summary, which may quote a complaint."""

    id: str
    unit: str
    kind: SignalKind
    due_at: datetime
    status: str
    #: Escalation level reached ("" for an overdue order not escalated).
    level: str


class Closure(_Value):
    units: list[UnitClosure]
    overdue: list[OrderLine]
    overdue_total: int
    escalated: list[OrderLine]
    escalated_total: int


class MonthlyReport(_Value):
    #: ``YYYY-MM``, a calendar month of China time.
    month: str
    #: Unit id -> name (policy/units.yaml when the report was made), of the units it shows; a
    #: unit no longer in the policy has none and is shown by its id.
    unit_names: dict[str, str]
    start: datetime
    end: datetime
    generated_at: datetime
    inflow: Inflow
    recurring: Recurring
    returns: Returns
    closure: Closure

    @property
    def empty(self) -> bool:
        """Nothing at all happened this month (no signal, order or dead letter)."""
        inflow = self.inflow
        return not any(k.signals or k.orders for k in inflow.by_kind) and not any(
            row.current for row in (*inflow.dead_letters_by_reason, *inflow.suppressed_by_reason)
        )
