"""The orders behind a number of the figures (the supervisor's drill-down) are exactly the
orders that number counts: as many as it says, each in the unit's cohort."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given
from hypothesis import strategies as st

from tests.unit.test_figures import DECEMBER, WEIGHTS, _times, facts
from workorder_pipeline.processors.figures import ALL_UNITS, Figure, OrderFacts, orders_behind, unit_figures


@given(st.lists(facts(), max_size=40, unique_by=lambda o: o.id), _times)
def test_the_orders_behind_each_number_are_as_many_as_it_counts(
    orders: list[OrderFacts], now: datetime
) -> None:
    by_id = {o.id: o for o in orders}
    for row in unit_figures(orders, DECEMBER, WEIGHTS, now):
        if row.kind is not None:
            continue
        for figure in Figure:
            rate = row.rates[figure]
            counted = orders_behind(orders, DECEMBER, row.unit, figure, True, now)
            judged = orders_behind(orders, DECEMBER, row.unit, figure, False, now)
            assert (len(counted), len(judged)) == (rate.numerator, rate.denominator)
            assert set(counted) <= set(judged)
            for order_id in judged:
                order = by_id[order_id]
                assert order.created_at in DECEMBER and row.unit in (order.unit, ALL_UNITS)


def test_a_unit_without_orders_has_none_behind_its_figures() -> None:
    assert (
        orders_behind([], DECEMBER, "squad-1", Figure.closed, False, datetime.now(DECEMBER.start.tzinfo))
        == []
    )
