"""``BatchTriageState``: triage state in memory, loaded for a batch (or empty for a replay)
and updated by the batch's own outcomes, so later signals see earlier decisions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from workorder_pipeline.processors.triage.outcome import Action, OpenOrder, RelatedOrders, TriageOutcome
from workorder_pipeline.schemas.signal import Signal

_NONE: tuple[str, ...] = ()


@dataclass
class BatchTriageState:
    """Triage state in memory: a snapshot loaded for a batch, updated by the batch's own outcomes."""

    #: dedupe key -> (open order, last seen at)
    open_orders: dict[str, tuple[OpenOrder, datetime]] = field(default_factory=dict)
    #: violation key -> times recorded
    violations: dict[str, list[datetime]] = field(default_factory=dict)
    #: plate or enterprise id -> open order ids, oldest first
    subjects: dict[str, list[str]] = field(default_factory=dict)
    #: subject -> (its list in ``subjects``, how much of it is in the set, the set of ids)
    _id_sets: dict[str, tuple[Sequence[str], int, set[str]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def open_order(self, dedupe_key: str, since: datetime) -> OpenOrder | None:
        found = self.open_orders.get(dedupe_key)
        return found[0] if found and found[1] >= since else None

    def prior_violations(self, violation_key: str, since: datetime) -> int:
        return sum(1 for at in self.violations.get(violation_key, []) if at >= since)

    def related_orders(self, plate: str | None, enterprise_id: str | None, limit: int) -> RelatedOrders:
        on_plate = self.subjects.get(plate, _NONE) if plate else _NONE
        on_enterprise = self.subjects.get(enterprise_id, _NONE) if enterprise_id else _NONE
        if len(on_plate) + len(on_enterprise) <= limit:
            return RelatedOrders(tuple(dict.fromkeys([*on_plate, *on_enterprise])))
        # More than ``limit`` may be open: the newest on the plate, then the enterprise's
        # newest, each group listed oldest first (as they are when all are linked).
        linked: list[str] = []
        seen: set[str] = set()
        for ids in (on_plate, on_enterprise):
            newest: list[str] = []
            for order_id in reversed(ids):
                if len(seen) == limit:
                    break
                if order_id not in seen:
                    seen.add(order_id)
                    newest.append(order_id)
            linked += reversed(newest)
        if len(linked) < limit:  # every open order on the subject is linked
            return RelatedOrders(tuple(linked))
        return RelatedOrders(tuple(linked), self._count_open(plate, enterprise_id) - len(linked))

    def _count_open(self, plate: str | None, enterprise_id: str | None) -> int:
        """Open orders on the plate or the enterprise, each counted once."""
        sets = sorted((self._ids_on(s) for s in (plate, enterprise_id) if s), key=len)
        if len(sets) < 2 or sets[0] is sets[1]:
            return len(sets[-1]) if sets else 0
        fewer, more = sets
        return len(more) + sum(1 for order_id in fewer if order_id not in more)

    def _ids_on(self, subject: str) -> set[str]:
        """``subjects[subject]`` as a set, kept up to date as the list grows (record appends)."""
        ids = self.subjects.get(subject, _NONE)
        known = self._id_sets.get(subject)
        if known is None or known[0] is not ids or known[1] > len(ids):
            known = (ids, 0, set())
        _, covered, distinct = known
        if covered < len(ids):
            distinct.update(ids[covered:])
            self._id_sets[subject] = (ids, len(ids), distinct)
        return distinct

    def record(self, outcome: TriageOutcome, order_id: str | None, now: datetime) -> None:
        """Remember what ``outcome`` did, so later signals of the batch see it."""
        signal = outcome.signal
        if outcome.violation_key:
            self.violations.setdefault(outcome.violation_key, []).append(now)
        if outcome.action is Action.merge and outcome.dedupe_key and outcome.merge_into:
            previous = (
                self.open_orders[outcome.dedupe_key][1] if outcome.dedupe_key in self.open_orders else None
            )
            last = max(signal.occurred_at, previous) if previous else signal.occurred_at
            self.open_orders[outcome.dedupe_key] = (outcome.merge_into, last)
        if outcome.action is Action.create and order_id is not None:
            if outcome.dedupe_key:
                self.open_orders[outcome.dedupe_key] = (
                    OpenOrder(order_id, outcome.route.unit),
                    signal.occurred_at,
                )
            for subject in subjects_of(signal):
                self.subjects.setdefault(subject, []).append(order_id)


def subjects_of(signal: Signal) -> Iterable[str]:
    """The plate and enterprise a signal is about (those it has)."""
    return [s for s in (signal.plate, signal.enterprise_id) if s]
