"""``route_signal``: walk the routing tree (policy data) and choose the unit and priority.

Semantics follow Alertmanager's routing tree: the root matches everything; children are
tried in order and the first that matches is descended into; a node no child of which
matches is the answer. ``unit`` and ``priority`` are inherited from the nearest ancestor
that sets them. After the tree, the conflict-of-interest rule has the last word: a
complaint about an enforcement unit never reaches that unit.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import partial

from workorder_pipeline.schemas.policy import ConflictOfInterest, Matcher, Route, RoutingTree, Units
from workorder_pipeline.schemas.signal import FieldValue, Signal
from workorder_pipeline.schemas.workorder import Priority

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


@dataclass(frozen=True, slots=True)
class RoutingPlan:
    """A routing tree compiled once (as Alertmanager's ``NewRoute`` builds its tree from the
    configuration once): every route's tests and inherited decision prepared."""

    root: _Node
    #: Unit id -> the regions it holds; None: no units given, jurisdictions are not applied.
    regions: Mapping[str, list[str]] | None
    conflict_of_interest: ConflictOfInterest


def compile_routes(tree: RoutingTree, units: Units | None = None) -> RoutingPlan:
    """``tree`` prepared for ``route_signal``; ``units`` (with their regions) are needed by
    routes with a jurisdiction."""
    root = tree.route
    assert root.unit is not None and root.priority is not None  # guaranteed by RoutingTree
    return RoutingPlan(
        root=_prepare(root, root.unit, root.priority, (root.key,), root.jurisdiction),
        regions=None if units is None else {unit.id: unit.regions for unit in units.units},
        conflict_of_interest=tree.conflict_of_interest,
    )


def route_signal(
    signal: Signal, routes: RoutingPlan, fields: Mapping[str, FieldValue] | None = None
) -> RouteDecision:
    """Route ``signal`` through the compiled tree.

    The first matching route decides the unit; routes matched after one with ``continue``
    add their units to ``copied_to`` (never the unit a complaint is about). ``fields`` is
    ``signal.route_fields()``, for a caller that has it already.
    """
    if fields is None:
        fields = signal.route_fields()
    found = _descend(routes.root, fields)
    primary = _apply_jurisdiction(found[0], routes.regions, signal.region_code)
    decision = _apply_conflict_of_interest(primary, fields, routes.conflict_of_interest)
    if len(found) == 1:  # no ``continue`` matched: no copies (most signals)
        return decision
    others = [_apply_jurisdiction(node, routes.regions, signal.region_code) for node in found[1:]]
    excluded = {decision.unit, fields.get("enforcement_unit")}
    copies = tuple(dict.fromkeys(other.unit for other in others if other.unit not in excluded))
    return replace(decision, copied_to=copies) if copies else decision


@dataclass(frozen=True, slots=True)
class _Node:
    """A route of the tree, prepared once: its tests, and its decision should it decide."""

    tests: CompiledMatch
    continue_: bool
    children: tuple[_Node, ...]
    #: The unit and priority inherited down to this route, and the path to it.
    decision: RouteDecision
    #: The jurisdiction of the nearest route on the path that lists one ([] if none does).
    jurisdiction: list[str]


def _prepare(
    route: Route, unit: str, priority: Priority, path: tuple[str, ...], jurisdiction: list[str]
) -> _Node:
    return _Node(
        tests=compiled(route.match),
        continue_=route.continue_,
        children=tuple(
            _prepare(
                child,
                child.unit or unit,
                child.priority or priority,
                (*path, child.key),
                child.jurisdiction or jurisdiction,
            )
            for child in route.routes
        ),
        decision=RouteDecision(unit, priority, route.key, path, reason=f"matched route {route.key}"),
        jurisdiction=jurisdiction,
    )


def _descend(node: _Node, fields: Mapping[str, FieldValue]) -> list[_Node]:
    """Every route that decides, in order: the first match, then more only through ``continue``."""
    found: list[_Node] = []
    for child in node.children:
        if passes(child.tests, fields):
            found += _descend(child, fields)
            if not child.continue_:
                break
    return found or [node]


def _apply_jurisdiction(
    node: _Node, regions: Mapping[str, list[str]] | None, region: str | None
) -> RouteDecision:
    """The nearest route on the path that lists a jurisdiction picks the unit holding ``region``."""
    decision, candidates = node.decision, node.jurisdiction
    if not candidates or regions is None:
        return decision
    holder = next((unit for unit in candidates if region and region in regions.get(unit, [])), None)
    if holder is None:
        reason = f"{decision.reason}; region {region} is in no listed jurisdiction: {decision.unit} decides"
        return replace(decision, reason=reason)
    return replace(
        decision, unit=holder, reason=f"{decision.reason}; region {region} is {holder}'s jurisdiction"
    )


def _apply_conflict_of_interest(
    decision: RouteDecision, fields: Mapping[str, FieldValue], rule: ConflictOfInterest
) -> RouteDecision:
    complained_about = fields.get("enforcement_unit")
    if not complained_about:
        return decision
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
    return all(test(value) for test in _tests(matcher))


def matches_all(match: dict[str, Matcher], fields: Mapping[str, FieldValue]) -> bool:
    """Whether ``fields`` pass every matcher of a route's or rule's ``match``."""
    return passes(compiled(match), fields)


def passes(tests: CompiledMatch, fields: Mapping[str, FieldValue]) -> bool:
    """Whether ``fields`` pass every test of a compiled ``match``."""
    get = fields.get
    for name, test in tests:  # noqa: SIM110 - a loop, not all(): no generator on the hot path
        if not test(get(name)):
            return False
    return True


Test = Callable[[FieldValue], bool]
#: A ``match`` (field name -> matcher) as the tests of its fields, in the order written down.
CompiledMatch = tuple[tuple[str, Test], ...]


def compiled(match: dict[str, Matcher]) -> CompiledMatch:
    """``match`` as (field name, test) pairs: compiled with the policy, never per signal."""
    return tuple((name, test) for name, matcher in match.items() for test in _tests(matcher))


def _tests(m: Matcher) -> tuple[Test, ...]:
    """The matcher's operators as tests of one value, in the order they are written down."""
    tests: list[Test] = []
    if "equals" in m.model_fields_set:
        tests.append(_one_of((m.equals,), wanted=True))
    if "not_equals" in m.model_fields_set:
        tests.append(_one_of((m.not_equals,), wanted=False))
    if m.in_ is not None:
        tests.append(_one_of(tuple(m.in_), wanted=True))
    if m.not_in is not None:
        tests.append(_one_of(tuple(m.not_in), wanted=False))
    if m.regex is not None:
        pattern = re.compile(m.regex)
        tests.append(lambda value: isinstance(value, str) and pattern.fullmatch(value) is not None)
    for bound, compare in (
        (m.gt, operator.gt),
        (m.gte, operator.ge),
        (m.lt, operator.lt),
        (m.lte, operator.le),
    ):
        if bound is not None:
            tests.append(partial(_within, compare, bound))
    return tuple(tests)


def _within(compare: Callable[[float, float], bool], bound: float, value: FieldValue) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and compare(value, bound)


def _one_of(options: tuple[FieldValue, ...], wanted: bool) -> Test:
    """Whether a value is the ``same`` as one of ``options`` (``wanted``) or as none of them.

    The same answers as comparing with each option in turn, found by set lookups: values
    ``same`` tells apart (a flag and a number, a number and a string unlike its text) are
    looked up in different sets. Values of other types (subclasses of str or int, which
    may hash or compare their own way) are compared one by one, as are all values when
    an option is of another type.
    """
    strings: set[str] = set()
    numbers: set[int | float] = set()
    flags: set[bool] = set()
    has_none = False
    for option in options:
        if type(option) is bool:
            flags.add(option)
        elif type(option) is str:
            strings.add(option)
        elif type(option) is int or type(option) is float:
            numbers.add(option)
            strings.add(str(option))  # "320682" is the same as 320682
        elif option is None:
            has_none = True
        else:
            return partial(_any_same, options, wanted)

    def test(value: FieldValue) -> bool:
        kind = type(value)
        if kind is str:
            found = value in strings
        elif kind is bool:
            found = value in flags
        elif kind is int or kind is float:
            found = value in numbers and value == value  # NaN is the same as nothing
        elif value is None:
            found = has_none
        else:
            found = _any_same(options, True, value)
        return found is wanted

    return test


def _any_same(options: tuple[FieldValue, ...], wanted: bool, value: FieldValue) -> bool:
    return any(same(value, option) for option in options) is wanted


def same(value: FieldValue, expected: FieldValue) -> bool:
    """Equality as a policy author means it: ``region: 320682`` (a YAML number) equals the
    region "320682", and ``true`` never equals 1."""
    if isinstance(value, bool) or isinstance(expected, bool):
        return isinstance(value, bool) and isinstance(expected, bool) and value == expected
    if isinstance(value, str) and isinstance(expected, int | float):
        return value == str(expected)
    return value == expected
