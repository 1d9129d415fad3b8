"""Dedupe's arithmetic: what the signals merged into an order make of it.

An order counts its occurrences and spans the first and the last of them. A batch keeps the
orders it registers whole (a signal merged later in the batch changes them before they are
written) and only counts what it merges into orders registered earlier: the database adds
that to the stored order (another batch may be merging into it too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from workorder_pipeline.schemas.workorder import Occurrences, WorkOrder


def one_more(seen: Occurrences | None, occurred_at: datetime) -> Occurrences:
    """``seen`` and one more signal, which occurred at ``occurred_at``."""
    if seen is None:
        return Occurrences(1, occurred_at, occurred_at)
    return Occurrences(
        seen.count + 1, min(seen.first_seen_at, occurred_at), max(seen.last_seen_at, occurred_at)
    )


def with_occurrences(order: WorkOrder, merged: Occurrences) -> WorkOrder:
    """``order`` with the signals ``merged`` into it counted."""
    return order.model_copy(
        update={
            "occurrences": order.occurrences + merged.count,
            "first_seen_at": min(order.first_seen_at, merged.first_seen_at),
            "last_seen_at": max(order.last_seen_at, merged.last_seen_at),
        }
    )


@dataclass(slots=True)
class _Registered:
    order: WorkOrder
    source_ids: list[str]
    merged: Occurrences | None = None

    def current(self) -> WorkOrder:
        """The order as the database holds it once the batch is written (as a re-read returns it)."""
        order = self.order
        one_source = len(self.source_ids) == 1 and order.source_ids == (self.source_ids[0],)
        if self.merged is None and one_source and order.related_ids == tuple(sorted(order.related_ids)):
            return order  # as registered (one source): nothing to sort or count (most orders)
        order = order.model_copy(
            update={
                "source_ids": tuple(sorted(self.source_ids)),
                "related_ids": tuple(sorted(self.order.related_ids)),
            }
        )
        return order if self.merged is None else with_occurrences(order, self.merged)


@dataclass(slots=True)
class BatchMerges:
    """The orders a batch registers and the signals it merges, in the order decided."""

    _registered: dict[str, _Registered] = field(default_factory=dict)
    _into_earlier: dict[str, Occurrences] = field(default_factory=dict)

    def register(self, order: WorkOrder, source_id: str) -> None:
        self._registered[order.id] = _Registered(order, [source_id])

    def merge(self, order_id: str, source_id: str, occurred_at: datetime) -> None:
        registered = self._registered.get(order_id)
        if registered is None:
            self._into_earlier[order_id] = one_more(self._into_earlier.get(order_id), occurred_at)
            return
        registered.source_ids.append(source_id)
        registered.merged = one_more(registered.merged, occurred_at)

    def registered(self) -> list[WorkOrder]:
        """The orders registered, with what later signals of the batch merged into them."""
        return [registered.current() for registered in self._registered.values()]

    def into_earlier(self) -> dict[str, Occurrences]:
        """Order registered before the batch -> the signals the batch merged into it."""
        return dict(self._into_earlier)
