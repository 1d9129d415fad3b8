"""``route_signal``: walk the routing tree (policy data) and choose the unit and priority.

Semantics follow Alertmanager's routing tree: the root matches everything; children are
tried in order and the first that matches is descended into; a node no child of which
matches is the answer. ``unit`` and ``priority`` are inherited from the nearest ancestor
that sets them. After the tree, the conflict-of-interest rule has the last word: a
complaint about an enforcement unit never reaches that unit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

from schemas.policy import Matcher, Route, RoutingTree, Units
from schemas.signal import FieldValue, Signal
from schemas.workorder import Priority

CONFLICT_OF_INTEREST_KEY = "conflict-of-interest"


@dataclass(frozen=True, slots=True)
class RouteDecision:
    unit: str
    priority: Priority
    #: Key of the route that decided; stable, used in metrics and the audit trail.
    route_key: str
    #: Keys from the root to the deciding route, for explanations.
    path: tuple[str, ...]
    reason: str
    #: Units that get a copy of the order (routes matched through ``continue``).
    copied_to: tuple[str, ...] = ()


def route_signal(signal: Signal, tree: RoutingTree, units: Units | None = None) -> RouteDecision:
    """Route ``signal``; ``units`` (with their regions) are needed by routes with a jurisdiction.

    The first matching route decides the unit; routes matched after one with ``continue``
    add their units to ``copied_to`` (never the unit a complaint is about).
    """
    fields = signal.route_fields()
    root = tree.route
    assert root.unit is not None and root.priority is not None  # guaranteed by RoutingTree
    primary, *others = [
        _apply_jurisdiction(found, tree, units, signal.region_code)
        for found in _descend(root, fields, root.unit, root.priority, (root.key,))
    ]
    decision = _apply_conflict_of_interest(primary, fields, tree)
    excluded = {decision.unit, fields.get("enforcement_unit")}
    copies = tuple(dict.fromkeys(other.unit for other in others if other.unit not in excluded))
    return replace(decision, copied_to=copies) if copies else decision


def _descend(
    node: Route, fields: dict[str, FieldValue], unit: str, priority: Priority, path: tuple[str, ...]
) -> list[RouteDecision]:
    """Every route that decides, in order: the first match, then more only through ``continue``."""
    found: list[RouteDecision] = []
    for child in node.routes:
        if all(matches(matcher, fields.get(name)) for name, matcher in child.match.items()):
            found += _descend(
                child, fields, child.unit or unit, child.priority or priority, (*path, child.key)
            )
            if not child.continue_:
                break
    return found or [RouteDecision(unit, priority, node.key, path, reason=f"matched route {node.key}")]


def _apply_jurisdiction(
    decision: RouteDecision, tree: RoutingTree, units: Units | None, region: str | None
) -> RouteDecision:
    """The nearest route on the path that lists a jurisdiction picks the unit holding ``region``."""
    nodes = {node.key: node for node in tree.route.walk()}
    candidates = next((nodes[k].jurisdiction for k in reversed(decision.path) if nodes[k].jurisdiction), [])
    if not candidates or units is None:
        return decision
    regions = {unit.id: unit.regions for unit in units.units}
    holder = next((unit for unit in candidates if region and region in regions.get(unit, [])), None)
    if holder is None:
        reason = f"{decision.reason}; region {region} is in no listed jurisdiction: {decision.unit} decides"
        return replace(decision, reason=reason)
    return replace(
        decision, unit=holder, reason=f"{decision.reason}; region {region} is {holder}'s jurisdiction"
    )


def _apply_conflict_of_interest(
    decision: RouteDecision, fields: dict[str, FieldValue], tree: RoutingTree
) -> RouteDecision:
    complained_about = fields.get("enforcement_unit")
    if not complained_about:
        return decision
    rule = tree.conflict_of_interest
    receiver = rule.fallback if complained_about == rule.receiver else rule.receiver
    return RouteDecision(
        unit=receiver,
        priority=decision.priority,
        route_key=CONFLICT_OF_INTEREST_KEY,
        path=(*decision.path, CONFLICT_OF_INTEREST_KEY),
        reason=f"complaint about enforcement unit {complained_about}: reviewed by {receiver}",
    )


def matches(matcher: Matcher, value: FieldValue) -> bool:
    """Whether one field's value passes every operator the matcher sets."""
    checks: list[bool] = []
    if "equals" in matcher.model_fields_set:
        checks.append(same(value, matcher.equals))
    if "not_equals" in matcher.model_fields_set:
        checks.append(not same(value, matcher.not_equals))
    if matcher.in_ is not None:
        checks.append(any(same(value, option) for option in matcher.in_))
    if matcher.not_in is not None:
        checks.append(not any(same(value, option) for option in matcher.not_in))
    if matcher.regex is not None:
        checks.append(isinstance(value, str) and _compiled(matcher.regex).fullmatch(value) is not None)
    bounds = (matcher.gt, matcher.gte, matcher.lt, matcher.lte)
    if any(bound is not None for bound in bounds):
        if not isinstance(value, int | float) or isinstance(value, bool):
            return False
        checks += [
            matcher.gt is None or value > matcher.gt,
            matcher.gte is None or value >= matcher.gte,
            matcher.lt is None or value < matcher.lt,
            matcher.lte is None or value <= matcher.lte,
        ]
    return all(checks)


def same(value: FieldValue, expected: FieldValue) -> bool:
    """Equality as a policy author means it: ``region: 320682`` (a YAML number) equals the
    region "320682", and ``true`` never equals 1."""
    if isinstance(value, bool) or isinstance(expected, bool):
        return isinstance(value, bool) and isinstance(expected, bool) and value == expected
    if isinstance(value, str) and isinstance(expected, int | float):
        return value == str(expected)
    return value == expected


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
