"""One syntax of a month (``YYYY-MM``, ASCII digits) for the figures and the reports."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from workorder_pipeline.processors.figures import month_label
from workorder_pipeline.services.figures import period_named

NOW = datetime(2026, 12, 6, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    ["２０２６-１１", "٢٠٢٦-١١", "2026-13", "2026-00", "2026-1", "2026-11\n", "0000-01", "2026-11" * 1000],
)
def test_a_month_in_any_other_spelling_is_refused_by_the_figures(text: str) -> None:
    with pytest.raises(ValueError):
        period_named(text, NOW)


def test_a_month_label_is_read_and_shown_the_same() -> None:
    assert month_label("2026-11") == (2026, 11)
    assert period_named("2026-11", NOW).label == "2026-11"
    assert month_label("２０２６-１１") is None
