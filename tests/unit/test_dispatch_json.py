"""The dispatched message written without the model (``WorkOrder.dispatch_json``) is the
model's JSON byte for byte, and an order the model refuses is refused the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.unit.test_workorders import ALL_EVENTS, order_for
from workorder_pipeline.schemas.workorder import Priority, Subject, WorkOrder

CHINA = timezone(timedelta(hours=8))


def model_json(order: WorkOrder) -> bytes:
    return order.dispatch_message().model_dump_json(by_alias=True).encode()


@pytest.mark.parametrize(
    "event", ALL_EVENTS, ids=[f"{type(e).__name__}-{n}" for n, e in enumerate(ALL_EVENTS)]
)
@pytest.mark.parametrize(
    "clock", [datetime(2026, 11, 22, 9, 0, tzinfo=UTC), datetime(2026, 11, 22, 17, 0, tzinfo=CHINA)]
)
def test_every_sample_order_is_dispatched_as_the_model_writes_it(event: Any, clock: datetime) -> None:
    order = order_for(event, now=clock)
    assert order.dispatch_json() == model_json(order)


#: Text a publisher or a policy may put in a summary, a plate or an id: quotes, escapes,
#: control characters, any Unicode a str from JSON can hold.
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
AWARE = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from(
        [UTC, CHINA, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=45))]
    ),
)


@settings(max_examples=300, deadline=None)
@given(
    text=TEXT,
    times=st.lists(AWARE, min_size=4, max_size=4),
    optional=st.lists(st.none() | AWARE, min_size=2, max_size=2),
    ids=st.lists(TEXT, max_size=3),
    occurrences=st.integers(min_value=1, max_value=2**63),
    provisional=st.booleans(),
    priority=st.sampled_from(list(Priority)),
)
def test_any_order_is_dispatched_as_the_model_writes_it(
    text: str,
    times: list[datetime],
    optional: list[datetime | None],
    ids: list[str],
    occurrences: int,
    provisional: bool,
    priority: Priority,
) -> None:
    order = order_for(ALL_EVENTS[0]).model_copy(
        update={
            "id": text,
            "unit": text,
            "summary": text,
            "route_key": text,
            "priority": priority,
            "subject": Subject(plate=text, place=text),
            "due_at": times[0],
            "created_at": times[1],
            "first_seen_at": times[2],
            "last_seen_at": times[3],
            "upstream_due_at": optional[0],
            "accept_due_at": optional[1],
            "source_ids": tuple(ids),
            "related_ids": tuple(ids),
            "copied_to": tuple(ids),
            "occurrences": occurrences,
            "deadline_provisional": provisional,
            "suggested_disposition": text or None,
        }
    )
    assert order.dispatch_json() == model_json(order)


class LaterDatetime(datetime):
    """A datetime subclass: the fast path leaves it to the model."""


@pytest.mark.parametrize(
    "change",
    [
        {"due_at": datetime(2026, 11, 22, 9, 0)},  # no offset
        {"accept_due_at": datetime(2026, 11, 22, 9, 0)},
        {"created_at": datetime(1, 1, 1, 0, 0, tzinfo=CHINA)},  # no UTC equivalent
        {"occurrences": 0},
        {"occurrences": -3},
    ],
    ids=["naive-due", "naive-accept-due", "before-year-1-in-utc", "zero-occurrences", "negative-occurrences"],
)
def test_an_order_the_model_refuses_is_refused_by_the_fast_path_too(change: dict[str, Any]) -> None:
    order = order_for(ALL_EVENTS[0]).model_copy(update=change)
    with pytest.raises(ValidationError) as by_model:
        model_json(order)
    with pytest.raises(ValidationError) as by_fast_path:
        order.dispatch_json()
    assert by_fast_path.value.errors(include_context=False) == by_model.value.errors(include_context=False)


def test_a_datetime_subclass_is_written_as_the_model_writes_it() -> None:
    moment = LaterDatetime(2026, 11, 22, 17, 0, 0, 5, tzinfo=CHINA)
    order = order_for(ALL_EVENTS[0]).model_copy(update={"due_at": moment, "created_at": moment})
    assert order.dispatch_json() == model_json(order)
