"""route_signal: Alertmanager-style routing tree, then the conflict-of-interest rule."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from workorder_pipeline.processors.intake import Rejection, decode_event
from workorder_pipeline.processors.routing import (
    CONFLICT_OF_INTEREST_KEY,
    compile_routes,
    matches,
    route_signal,
    same,
)
from workorder_pipeline.processors.signals import to_signal
from workorder_pipeline.schemas.inbound import (
    AlarmType,
    Channel,
    CheckinOutcome,
    ComplaintCategory,
    PlateColor,
    SuspectType,
    VehicleClass,
)
from workorder_pipeline.schemas.policy import Matcher, RoutingTree
from workorder_pipeline.schemas.signal import FieldValue, Signal, SignalKind
from workorder_pipeline.services.policy_files import load_policy

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
POLICY = load_policy(ROOT / "policy")
ROUTES = compile_routes(POLICY.routing, POLICY.units)
UNIT_IDS = sorted(POLICY.units.ids())
WHEN = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)

PROPERTIES = settings(max_examples=100, deadline=None, database=None)


def signal(
    kind: SignalKind, region: str | None = None, urgent: bool = False, **attributes: FieldValue
) -> Signal:
    return Signal(
        kind=kind,
        source_id="test/1",
        occurred_at=WHEN,
        region_code=region,
        urgent=urgent,
        attributes=attributes,
        summary="test",
    )


# ---------------------------------------------------------------- an inline tree

TREE_YAML = r"""
route:
  key: root
  unit: desk
  priority: P3
  routes:
    - key: alarm
      match: {kind: vehicle_alarm}
      unit: roads
      routes:
        - key: alarm.severe
          match: {level: {gte: 3}}
          priority: P1
          routes:
            - key: alarm.severe.coach
              match: {vehicle_class: coach}
              unit: passengers
        - key: alarm.coach
          match: {vehicle_class: coach}
          unit: passengers
        - key: alarm.fast
          match: {overspeed_pct: {gt: 20, lte: 50}, vehicle_class: {not_in: [coach]}}
          priority: P2
    - key: alarm-shadowed          # never reached: "alarm" above takes every alarm first
      match: {kind: vehicle_alarm}
      unit: nobody
      priority: P1
    - key: local
      match: {region: {regex: '3206\d\d'}}
      priority: P2
      routes:
        - key: local.urgent
          match: {urgent: true}
          unit: duty
          priority: P1
    - key: complaint
      match: {kind: complaint, category: {in: [refusal, detour]}}
      unit: passengers
conflict_of_interest:
  receiver: review
  fallback: desk
"""

TREE = RoutingTree.model_validate(yaml.safe_load(TREE_YAML))
TREE_ROUTES = compile_routes(TREE)

A = SignalKind.vehicle_alarm


@pytest.mark.parametrize(
    ("given_signal", "unit", "route_key", "priority"),
    [
        pytest.param(
            signal(A, level=1, vehicle_class="heavy_truck"),
            "roads",
            "alarm",
            "P3",
            id="unit-set-priority-inherited-from-root",
        ),
        pytest.param(
            signal(A, level=3, vehicle_class="heavy_truck"),
            "roads",
            "alarm.severe",
            "P1",
            id="child-sets-priority-inherits-unit",
        ),
        pytest.param(
            signal(A, level=3, vehicle_class="coach"),
            "passengers",
            "alarm.severe.coach",
            "P1",
            id="deepest-match-decides-and-inherits-priority",
        ),
        pytest.param(
            signal(A, level=2, vehicle_class="coach"),
            "passengers",
            "alarm.coach",
            "P3",
            id="first-matching-sibling-wins",
        ),
        pytest.param(
            signal(A, level=2, vehicle_class="heavy_truck", overspeed_pct=30.0),
            "roads",
            "alarm.fast",
            "P2",
            id="all-matchers-of-a-route-hold",
        ),
        pytest.param(
            signal(A, level=2, vehicle_class="coach", overspeed_pct=30.0),
            "passengers",
            "alarm.coach",
            "P3",
            id="earlier-sibling-shadows-later-one",
        ),
        pytest.param(
            signal(A, level=2, vehicle_class="heavy_truck", overspeed_pct=60.0),
            "roads",
            "alarm",
            "P3",
            id="no-child-matches-parent-decides",
        ),
        pytest.param(
            signal(A, vehicle_class="heavy_truck"),
            "roads",
            "alarm",
            "P3",
            id="missing-numeric-field-never-matches",
        ),
        pytest.param(
            signal(A, region="320682", level=1, vehicle_class="bus"),
            "roads",
            "alarm",
            "P3",
            id="first-match-wins-over-later-region-route",
        ),
        pytest.param(
            signal(SignalKind.suspect, region="320682"),
            "desk",
            "local",
            "P2",
            id="regex-on-region",
        ),
        pytest.param(
            signal(SignalKind.suspect, region="320682", urgent=True),
            "duty",
            "local.urgent",
            "P1",
            id="boolean-field",
        ),
        pytest.param(
            signal(SignalKind.suspect, region="3206821"),
            "desk",
            "root",
            "P3",
            id="regex-must-match-whole-value",
        ),
        pytest.param(
            signal(SignalKind.complaint, region="310101", category="detour"),
            "passengers",
            "complaint",
            "P3",
            id="kind-and-in-matcher",
        ),
        pytest.param(
            signal(SignalKind.complaint, category="waterway"),
            "desk",
            "root",
            "P3",
            id="unmatched-goes-to-default",
        ),
        pytest.param(signal(SignalKind.checkin_failure), "desk", "root", "P3", id="nothing-matches"),
        pytest.param(
            signal(SignalKind.complaint, category="refusal", enforcement_unit="passengers"),
            "review",
            CONFLICT_OF_INTEREST_KEY,
            "P3",
            id="conflict-of-interest-overrides-the-tree",
        ),
        pytest.param(
            signal(SignalKind.complaint, category="refusal", enforcement_unit="review"),
            "desk",
            CONFLICT_OF_INTEREST_KEY,
            "P3",
            id="complaint-about-the-receiver-goes-to-fallback",
        ),
    ],
)
def test_inline_tree_routes(given_signal: Signal, unit: str, route_key: str, priority: str) -> None:
    decision = route_signal(given_signal, TREE_ROUTES)
    assert (decision.unit, decision.route_key, decision.priority.value) == (unit, route_key, priority)


def test_a_shadowed_route_is_never_chosen() -> None:
    for level in (1, 2, 3):
        for vehicle_class in VehicleClass:
            decision = route_signal(signal(A, level=level, vehicle_class=vehicle_class.value), TREE_ROUTES)
            assert decision.unit != "nobody"
            assert "alarm-shadowed" not in decision.path


def test_decision_path_runs_from_the_root_to_the_deciding_route() -> None:
    decision = route_signal(signal(A, level=3, vehicle_class="coach"), TREE_ROUTES)
    assert decision.path == ("root", "alarm", "alarm.severe", "alarm.severe.coach")
    assert "alarm.severe.coach" in decision.reason


def test_conflict_of_interest_path_ends_with_the_rule() -> None:
    decision = route_signal(
        signal(SignalKind.complaint, category="refusal", enforcement_unit="roads"), TREE_ROUTES
    )
    assert decision.path == ("root", "complaint", CONFLICT_OF_INTEREST_KEY)
    assert "roads" in decision.reason


# ---------------------------------------------------------------- matcher operators


def matcher(spec: Any) -> Matcher:
    return Matcher.model_validate(spec)


@pytest.mark.parametrize(
    ("spec", "value", "expected"),
    [
        # bare value = equals
        pytest.param("coach", "coach", True, id="bare-equal"),
        pytest.param("coach", "bus", False, id="bare-different"),
        pytest.param("coach", None, False, id="bare-missing"),
        pytest.param(True, True, True, id="bare-bool"),
        pytest.param(True, "true", False, id="bare-bool-vs-text"),
        pytest.param(None, None, True, id="bare-null-matches-missing"),
        pytest.param(None, "x", False, id="bare-null-vs-value"),
        # equals / not_equals
        pytest.param({"equals": 3}, 3, True, id="equals-int"),
        pytest.param({"equals": 3}, 3.0, True, id="equals-int-vs-float"),
        pytest.param({"equals": 3}, "3", True, id="equals-yaml-number-matches-text"),
        pytest.param({"equals": 1}, True, False, id="equals-one-never-matches-true"),
        pytest.param({"equals": "320682"}, "320682", True, id="equals-text"),
        pytest.param({"not_equals": "coach"}, "bus", True, id="not-equals-different"),
        pytest.param({"not_equals": "coach"}, "coach", False, id="not-equals-same"),
        pytest.param({"not_equals": "coach"}, None, True, id="not-equals-missing"),
        pytest.param({"not_equals": None}, None, False, id="not-equals-null-vs-missing"),
        # in / not_in
        pytest.param({"in": ["a", "b"]}, "a", True, id="in-member"),
        pytest.param({"in": ["a", "b"]}, "c", False, id="in-non-member"),
        pytest.param({"in": ["a", "b"]}, None, False, id="in-missing"),
        pytest.param({"in": []}, "a", False, id="in-empty"),
        pytest.param({"not_in": ["a", "b"]}, "c", True, id="not-in-non-member"),
        pytest.param({"not_in": ["a", "b"]}, "a", False, id="not-in-member"),
        pytest.param({"not_in": ["a", "b"]}, None, True, id="not-in-missing"),
        # regex: a full match on text only
        pytest.param({"regex": r"3206\d\d"}, "320682", True, id="regex-full-match"),
        pytest.param({"regex": r"3206\d\d"}, "3206821", False, id="regex-prefix-only"),
        pytest.param({"regex": r"3206\d\d"}, "x320682", False, id="regex-suffix-only"),
        pytest.param({"regex": r"G\d+"}, "G15", True, id="regex-road"),
        pytest.param({"regex": r"\d+"}, 320682, False, id="regex-never-matches-number"),
        pytest.param({"regex": r".*"}, None, False, id="regex-never-matches-missing"),
        pytest.param({"regex": r"True"}, True, False, id="regex-never-matches-bool"),
        # gt / gte / lt / lte
        pytest.param({"gt": 50}, 50.1, True, id="gt-above"),
        pytest.param({"gt": 50}, 50, False, id="gt-equal"),
        pytest.param({"gt": 50}, 51, True, id="gt-int"),
        pytest.param({"gte": 50}, 50, True, id="gte-equal"),
        pytest.param({"gte": 50}, 49.9, False, id="gte-below"),
        pytest.param({"lt": 10}, 9.99, True, id="lt-below"),
        pytest.param({"lt": 10}, 10, False, id="lt-equal"),
        pytest.param({"lte": 10}, 10, True, id="lte-equal"),
        pytest.param({"lte": 10}, 10.5, False, id="lte-above"),
        pytest.param({"gte": 30, "lt": 50}, 30, True, id="range-low-end"),
        pytest.param({"gte": 30, "lt": 50}, 49.9, True, id="range-inside"),
        pytest.param({"gte": 30, "lt": 50}, 50, False, id="range-high-end"),
        pytest.param({"gte": 30, "lt": 50}, 29, False, id="range-below"),
        # numeric operators never match text, missing values or booleans
        pytest.param({"gte": 50}, "60", False, id="gte-vs-numeric-text"),
        pytest.param({"lt": 50}, "10", False, id="lt-vs-numeric-text"),
        pytest.param({"gte": 0}, None, False, id="gte-vs-missing"),
        pytest.param({"lte": 100}, None, False, id="lte-vs-missing"),
        pytest.param({"gte": 1}, True, False, id="gte-vs-true"),
        pytest.param({"lt": 1}, False, False, id="lt-vs-false"),
        pytest.param({"gt": -1, "not_equals": 5}, False, False, id="bool-with-other-operators"),
        # several operators: all must hold
        pytest.param({"in": ["a", "b"], "not_equals": "b"}, "a", True, id="in-and-not-equals-hold"),
        pytest.param({"in": ["a", "b"], "not_equals": "b"}, "b", False, id="in-holds-not-equals-fails"),
        pytest.param({"regex": "a.*", "not_in": ["ab"]}, "ab", False, id="regex-holds-not-in-fails"),
    ],
)
def test_matcher_operators(spec: Any, value: FieldValue, expected: bool) -> None:
    assert matches(matcher(spec), value) is expected


#: Values ``same`` tells apart, or not: flags and numbers, numbers and their text, NaN.
SCALARS: list[FieldValue] = [
    None, True, False, 0, 1, 2, 0.0, 1.0, 1.5, float("nan"), float("inf"), 320682,
    "", "0", "1", "1.0", "1.5", "True", "true", "None", "nan", "inf", "320682", "a",
]  # fmt: skip


def test_a_matcher_agrees_with_comparing_the_value_to_each_option_in_turn() -> None:
    option_lists = [[], *([o] for o in SCALARS), *map(list, itertools.combinations(SCALARS, 2))]
    for options in option_lists:
        for operator in ("equals", "not_equals", "in", "not_in"):
            listed = operator in ("in", "not_in")
            if not listed and len(options) != 1:
                continue
            compiled = matcher({operator: options if listed else options[0]})
            for value in SCALARS:
                found = any(same(value, option) for option in options)
                expected = found if operator in ("equals", "in") else not found
                assert matches(compiled, value) is expected, (operator, options, value)


class Code(StrEnum):
    """A str subclass: compared by its text, never by its name."""

    passenger = "coach"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param("coach", True, id="equals"),
        pytest.param({"in": ["bus", "coach"]}, True, id="in"),
        pytest.param({"not_in": ["coach"]}, False, id="not-in"),
        pytest.param({"equals": "passenger"}, False, id="name-is-not-value"),
    ],
)
def test_a_text_subclass_value_is_compared_by_its_text(spec: Any, expected: bool) -> None:
    assert matches(matcher(spec), Code.passenger) is expected


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({}, id="no-operator"),
        pytest.param({"like": "x"}, id="unknown-operator"),
        pytest.param({"regex": "("}, id="invalid-regex"),
        pytest.param({"gte": "fifty"}, id="non-numeric-bound"),
    ],
)
def test_a_malformed_matcher_is_refused(spec: Any) -> None:
    with pytest.raises(ValueError):
        matcher(spec)


# ---------------------------------------------------------------- the real policy


def sample(name: str, index: int) -> dict[str, Any]:
    lines = (SAMPLES / name).read_bytes().splitlines()
    document: dict[str, Any] = json.loads(lines[index])
    return document


def event_signal(document: dict[str, Any]) -> Signal:
    event = decode_event(json.dumps(document, ensure_ascii=False).encode(), document["schema"])
    assert not isinstance(event, Rejection), event
    return to_signal(event)


def dangerous_overspeed(speed: float, limit: float) -> dict[str, Any]:
    return {**sample("vehicle-alarms.jsonl", 5), "speed_kmh": speed, "speed_limit_kmh": limit}


@pytest.mark.parametrize(
    ("document", "unit", "route_key", "priority"),
    [
        pytest.param(
            sample("vehicle-alarms.jsonl", 3),
            "squad-1",
            "alarm.passenger.night-ban",
            "P1",
            id="coach-night-driving-ban",
        ),
        pytest.param(
            sample("vehicle-alarms.jsonl", 0), "squad-1", "alarm.passenger", "P3", id="coach-overspeed"
        ),
        pytest.param(
            dangerous_overspeed(90.0, 60.0),
            "squad-2",
            "alarm.freight.dangerous-overspeed",
            "P1",
            id="dangerous-goods-overspeed-50pct",
        ),
        pytest.param(
            dangerous_overspeed(120.0, 60.0),
            "squad-2",
            "alarm.freight.dangerous-overspeed",
            "P1",
            id="dangerous-goods-overspeed-100pct",
        ),
        pytest.param(
            dangerous_overspeed(78.0, 60.0),
            "squad-2",
            "alarm.freight",
            "P3",
            id="dangerous-goods-overspeed-30pct",
        ),
        pytest.param(
            sample("vehicle-alarms.jsonl", 5),
            "squad-2",
            "alarm.freight",
            "P3",
            id="sample-dangerous-overspeed-23pct",
        ),
        pytest.param(
            {**sample("vehicle-alarms.jsonl", 0), "vehicle_class": "heavy_truck", "speed_kmh": 200.0},
            "squad-2",
            "alarm.freight",
            "P3",
            id="heavy-truck-overspeed-is-not-dangerous-goods",
        ),
        pytest.param(
            sample("vehicle-alarms.jsonl", 4), "squad-5", "alarm.monitoring-device", "P3", id="offline-alarm"
        ),
        pytest.param(
            sample("vehicle-alarms.jsonl", 9),
            "squad-5",
            "alarm.monitoring-device",
            "P3",
            id="camera-blocked-alarm",
        ),
        pytest.param(
            {**sample("vehicle-alarms.jsonl", 0), "vehicle_class": "other"},
            "command-center",
            "alarm",
            "P3",
            id="vehicle-class-other",
        ),
        pytest.param(
            sample("suspects.jsonl", 1),
            "squad-1",
            "suspect.passenger",
            "P3",
            id="suspect-illegal-ride-hailing",
        ),
        pytest.param(
            sample("suspects.jsonl", 4),
            "squad-2",
            "suspect.dangerous-goods",
            "P3",
            id="suspect-dangerous-goods-off-base",
        ),
        pytest.param(
            sample("checkin-failures.jsonl", 0), "squad-5", "checkin", "P3", id="checkin-no-response"
        ),
        pytest.param(
            sample("checkin-failures.jsonl", 1), "squad-5", "checkin", "P3", id="checkin-late-response"
        ),
        pytest.param(
            sample("complaints.jsonl", 3),
            "squad-4",
            "complaint.driving-school",
            "P3",
            id="complaint-driving-school",
        ),
        pytest.param(
            sample("complaints.jsonl", 0), "squad-1", "complaint.passenger", "P3", id="complaint-refusal"
        ),
        pytest.param(
            sample("complaints.jsonl", 4), "water-1", "complaint.waterway", "P3", id="complaint-waterway"
        ),
        pytest.param(
            {**sample("complaints.jsonl", 0), "category": "other"},
            "command-center",
            "complaint",
            "P3",
            id="complaint-other-category",
        ),
        pytest.param(
            sample("complaints.jsonl", 5),
            "legal",
            CONFLICT_OF_INTEREST_KEY,
            "P3",
            id="complaint-about-squad-1-goes-to-legal",
        ),
        pytest.param(
            {
                **sample("complaints.jsonl", 0),
                "subject": {**sample("complaints.jsonl", 0)["subject"], "enforcement_unit": "squad-1"},
            },
            "legal",
            CONFLICT_OF_INTEREST_KEY,
            "P3",
            id="refusal-complaint-about-squad-1-goes-to-legal",
        ),
        pytest.param(
            {**sample("complaints.jsonl", 5), "subject": {"enforcement_unit": "legal"}},
            "command-center",
            CONFLICT_OF_INTEREST_KEY,
            "P3",
            id="complaint-about-legal-goes-to-command-center",
        ),
    ],
)
def test_real_policy_routes_each_kind_of_sample(
    document: dict[str, Any], unit: str, route_key: str, priority: str
) -> None:
    decision = route_signal(event_signal(document), ROUTES)
    assert (decision.unit, decision.route_key, decision.priority.value) == (unit, route_key, priority)


def test_complaint_about_a_squad_never_reaches_that_squad() -> None:
    base = sample("complaints.jsonl", 0)  # a refusal: the tree alone would send it to squad-1
    for unit in UNIT_IDS:
        document = {**base, "subject": {**base["subject"], "enforcement_unit": unit}}
        decision = route_signal(event_signal(document), ROUTES)
        assert decision.unit != unit
        assert decision.unit in UNIT_IDS


# ---------------------------------------------------------------- properties


def optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


def values(enum: Any) -> st.SearchStrategy[str]:
    return st.sampled_from([member.value for member in enum])


ATTRIBUTES = st.fixed_dictionaries(
    {},
    optional={
        "vehicle_class": values(VehicleClass),
        "alarm_type": values(AlarmType),
        "plate_color": values(PlateColor),
        "level": optional(st.integers(min_value=1, max_value=3)),
        "platform_id": st.sampled_from(["js-key-vehicles", "nt-taxi-supervision", "rg-bus-dispatch"]),
        "speed_kmh": optional(st.floats(min_value=0, max_value=300, allow_nan=False)),
        "speed_limit_kmh": optional(st.floats(min_value=1, max_value=130, allow_nan=False)),
        "overspeed_pct": optional(st.floats(min_value=-100, max_value=500, allow_nan=False)),
        "duration_s": optional(st.floats(min_value=0, max_value=86_400, allow_nan=False)),
        "suspect_type": values(SuspectType),
        "pass_count": st.integers(min_value=0, max_value=10_000),
        "window_days": st.integers(min_value=1, max_value=366),
        "score": optional(st.floats(min_value=0, max_value=1, allow_nan=False)),
        "outcome": values(CheckinOutcome),
        "vehicles_moving": st.integers(min_value=0, max_value=100),
        "category": values(ComplaintCategory),
        "channel": values(Channel),
        "enforcement_unit": optional(st.sampled_from(UNIT_IDS)),
    },
)


@st.composite
def signals(draw: st.DrawFn) -> Signal:
    return Signal(
        kind=draw(st.sampled_from(list(SignalKind))),
        source_id=draw(st.text(min_size=1, max_size=20)),
        occurred_at=WHEN,
        plate=draw(optional(st.just("苏F12345"))),
        enterprise_id=draw(optional(st.just("91320682MA1T6G2K8X"))),
        region_code=draw(optional(st.sampled_from(["320682", "320612", "320623", "320685", "310101"]))),
        attributes=draw(ATTRIBUTES),
        summary="generated",
        urgent=draw(st.booleans()),
    )


@PROPERTIES
@given(signals())
def test_every_signal_gets_a_unit_listed_in_units_yaml(given_signal: Signal) -> None:
    decision = route_signal(given_signal, ROUTES)
    assert decision.unit in UNIT_IDS
    assert decision.path[0] == POLICY.routing.route.key
    assert decision.route_key == decision.path[-1]
    named = given_signal.attributes.get("enforcement_unit")
    if named:
        assert decision.unit != named


@PROPERTIES
@given(signals())
def test_routing_is_deterministic(given_signal: Signal) -> None:
    copy = Signal.model_validate(given_signal.model_dump())
    decision = route_signal(given_signal, ROUTES)
    assert decision == route_signal(copy, ROUTES)
    assert decision == route_signal(given_signal, ROUTES)


@PROPERTIES
@given(signals(), st.sampled_from(UNIT_IDS))
def test_a_complaint_never_reaches_the_unit_it_names(given_signal: Signal, named: str) -> None:
    complaint = given_signal.model_copy(
        update={
            "kind": SignalKind.complaint,
            "attributes": {**given_signal.attributes, "enforcement_unit": named},
        }
    )
    decision = route_signal(complaint, ROUTES)
    assert decision.unit != named
    assert decision.unit in UNIT_IDS
    assert decision.route_key == CONFLICT_OF_INTEREST_KEY


# ---------------------------------------------------------------- continue: copies (抄送)

CONTINUE_TREE = RoutingTree.model_validate(
    yaml.safe_load(
        """
route:
  key: root
  unit: command-center
  priority: P3
  routes:
    - key: device
      match: {alarm_type: offline}
      unit: squad-5
      continue: true
    - key: freight
      match: {vehicle_class: {in: [dangerous_goods, heavy_truck]}}
      unit: squad-2
    - key: also-freight
      match: {vehicle_class: dangerous_goods}
      unit: squad-9
"""
    )
)
CONTINUE_ROUTES = compile_routes(CONTINUE_TREE)


def test_continue_gives_later_matches_a_copy_and_keeps_the_first_responsible() -> None:
    decision = route_signal(signal(A, alarm_type="offline", vehicle_class="dangerous_goods"), CONTINUE_ROUTES)
    assert (decision.unit, decision.route_key) == ("squad-5", "device")
    # freight matched through continue; also-freight is not tried after freight (no continue there).
    assert decision.copied_to == ("squad-2",)


def test_without_a_later_match_there_is_no_copy() -> None:
    decision = route_signal(signal(A, alarm_type="offline", vehicle_class="coach"), CONTINUE_ROUTES)
    assert (decision.unit, decision.copied_to) == ("squad-5", ())


def test_a_route_without_continue_stops_the_search() -> None:
    decision = route_signal(
        signal(A, alarm_type="overspeed", vehicle_class="dangerous_goods"), CONTINUE_ROUTES
    )
    assert (decision.unit, decision.copied_to) == ("squad-2", ())


def test_the_shipped_policy_copies_a_freight_vehicles_offline_alarm_to_squad_2() -> None:
    decision = route_signal(signal(A, alarm_type="offline", vehicle_class="heavy_truck"), ROUTES)
    assert (decision.unit, decision.copied_to) == ("squad-5", ("squad-2",))
