"""What triage decides and the state it asks: outcomes, the steps that explain them, suppression
reasons (a metric label), and the protocol through which open orders and earlier violations come in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from workorder_pipeline.processors.routing import RouteDecision
from workorder_pipeline.schemas.signal import Signal
from workorder_pipeline.schemas.workorder import Priority

WHITELIST_REVIEW_KEY = "whitelist-review"
WARNING_DISPOSITION = "warning_minor_violation"


class Action(StrEnum):
    create = "create"
    merge = "merge"
    suppress = "suppress"


class SuppressionReason(StrEnum):
    """Why a signal made no order. A closed set: it is a metric label."""

    mute_window = "mute_window"
    whitelist = "whitelist"
    threshold = "threshold"
    minor_violation = "minor_violation"
    #: Older than WO_MAX_EVENT_AGE_DAYS at receipt (decided before triage: processors/admission.py).
    stale = "stale"


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    outcome: str
    reason: str


@dataclass(frozen=True, slots=True)
class OpenOrder:
    id: str
    unit: str


@dataclass(frozen=True, slots=True)
class Suppression:
    reason: SuppressionReason
    rule_key: str
    detail: str


@dataclass(frozen=True, slots=True)
class TriageOutcome:
    signal: Signal
    action: Action
    route: RouteDecision
    priority: Priority
    steps: tuple[Step, ...]
    dedupe_key: str | None = None
    merge_into: OpenOrder | None = None
    suppression: Suppression | None = None
    suggested_disposition: str | None = None
    #: Set when a minor-violation rule matched: what later "first violation?" checks count.
    violation_key: str | None = None
    related: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RelatedOrders:
    """Open orders on a signal's plate or enterprise: those to link, and how many more there are."""

    ids: tuple[str, ...] = ()
    #: Open orders on the same subject not in ``ids`` (beyond ``max_related``).
    unlinked: int = 0


class TriageState(Protocol):
    def open_order(self, dedupe_key: str, since: datetime) -> OpenOrder | None:
        """An open order with this dedupe key last seen at or after ``since``."""
        ...

    def prior_violations(self, violation_key: str, since: datetime) -> int:
        """Signals recorded under this violation key at or after ``since``."""
        ...

    def related_orders(self, plate: str | None, enterprise_id: str | None, limit: int) -> RelatedOrders:
        """Ids of at most ``limit`` open orders on the same plate or enterprise: the most
        recently created, those on the plate first; and how many others there are."""
        ...
