"""Dedupe's arithmetic (processors.merging) and the source key's one spelling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workorder_pipeline.processors.merging import BatchMerges, one_more, with_occurrences
from workorder_pipeline.schemas.signal import SignalKind, SourceKey
from workorder_pipeline.schemas.workorder import Occurrences, Priority, Subject, WorkOrder, WorkOrderStatus

T = datetime(2026, 11, 19, 8, 0, tzinfo=UTC)


def order(order_id: str = "WO-1", at: datetime = T) -> WorkOrder:
    return WorkOrder(
        id=order_id,
        kind=SignalKind.vehicle_alarm,
        status=WorkOrderStatus.registered,
        unit="squad-1",
        priority=Priority.P2,
        route_key="root",
        created_at=at,
        due_at=at + timedelta(days=1),
        subject=Subject(plate="苏F21367"),
        summary="overspeed",
        source_ids=("p/1",),
        first_seen_at=at,
        last_seen_at=at,
    )


@given(st.lists(st.integers(-1000, 1000), min_size=1, max_size=20))
def test_occurrences_span_the_earliest_and_the_latest_signal_in_any_order(minutes: list[int]) -> None:
    seen: Occurrences | None = None
    for m in minutes:
        seen = one_more(seen, T + timedelta(minutes=m))
    assert seen == Occurrences(
        len(minutes), T + timedelta(minutes=min(minutes)), T + timedelta(minutes=max(minutes))
    )


def test_an_order_counts_what_is_merged_into_it_and_widens_its_span() -> None:
    merged = Occurrences(3, T - timedelta(hours=1), T + timedelta(hours=2))

    after = with_occurrences(order(), merged)

    assert (after.occurrences, after.first_seen_at, after.last_seen_at) == (
        4,
        merged.first_seen_at,
        merged.last_seen_at,
    )


def test_a_batch_keeps_its_own_orders_whole_and_counts_merges_into_earlier_ones_apart() -> None:
    merges = BatchMerges()
    merges.register(order("WO-new"), "p/2")
    merges.merge("WO-new", "p/1", T + timedelta(minutes=5))
    merges.merge("WO-old", "p/3", T + timedelta(minutes=7))
    merges.merge("WO-old", "p/4", T + timedelta(minutes=6))

    [new] = merges.registered()

    assert (new.occurrences, new.source_ids, new.last_seen_at) == (
        2,
        ("p/1", "p/2"),
        T + timedelta(minutes=5),
    )
    assert merges.into_earlier() == {
        "WO-old": Occurrences(2, T + timedelta(minutes=6), T + timedelta(minutes=7))
    }


@pytest.mark.parametrize("source_id", ["js-key-vehicles/JSKV-1", "a:b:c", "", "苏F:1"])
def test_a_source_key_reads_back_as_it_is_stored(source_id: str) -> None:
    key = SourceKey(SignalKind.complaint, source_id)

    assert str(key) == f"complaint:{source_id}"
    assert SourceKey.parse(str(key)) == key


def test_a_stored_key_of_no_known_kind_is_refused() -> None:
    with pytest.raises(ValueError):
        SourceKey.parse("fax:123")
