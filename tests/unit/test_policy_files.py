"""load_policy: the shipped policy loads; every mistake is reported at its file and line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from workorder_pipeline.schemas.policy import Policy
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import Priority
from workorder_pipeline.services.policy_files import PolicyError, PolicyProblem, load_policy

POLICY_DIR = Path(__file__).resolve().parents[2] / "policy"


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    target = tmp_path / "policy"
    shutil.copytree(POLICY_DIR, target)
    return target


def edit(directory: Path, file: str, old: str, new: str) -> None:
    """Replace the one occurrence of ``old`` in ``file``."""
    path = directory / file
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {file}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def line_of(directory: Path, file: str, marker: str, occurrence: int = 1) -> int:
    """The 1-based line of the ``occurrence``-th line of ``file`` containing ``marker``."""
    lines = (directory / file).read_text(encoding="utf-8").splitlines()
    found = [number for number, line in enumerate(lines, start=1) if marker in line]
    assert len(found) >= occurrence, f"{marker!r} is not in {file} {occurrence} times"
    return found[occurrence - 1]


def problems(directory: Path) -> list[PolicyProblem]:
    with pytest.raises(PolicyError) as caught:
        load_policy(directory)
    assert caught.value.problems, "a PolicyError must list its problems"
    return caught.value.problems


def the_problem(directory: Path) -> PolicyProblem:
    found = problems(directory)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


# ---------------------------------------------------------------- the shipped policy


def test_the_shipped_policy_loads() -> None:
    policy = load_policy(POLICY_DIR)
    assert isinstance(policy, Policy)
    assert policy.units.ids() == {
        "command-center",
        "squad-1",
        "squad-2",
        "squad-3",
        "squad-4",
        "squad-5",
        "water-1",
        "water-2",
        "nav",
        "legal",
    }
    root = policy.routing.route
    assert (root.unit, root.priority) == ("command-center", Priority.P3)
    assert policy.routing.conflict_of_interest.receiver == "legal"
    assert policy.deadlines.limit(SignalKind.vehicle_alarm, Priority.P1).hours == 24
    assert policy.deadlines.limit(SignalKind.complaint, Priority.P2).working_days == 2


def test_every_unit_a_route_names_is_listed(policy_dir: Path) -> None:
    policy = load_policy(policy_dir)
    named = {node.unit for node in policy.routing.route.walk() if node.unit}
    assert named <= policy.units.ids()


# ---------------------------------------------------------------- routes.yaml mistakes


def test_unknown_unit_in_a_route_names_routes_yaml_and_the_line_of_that_unit(policy_dir: Path) -> None:
    edit(policy_dir, "routes.yaml", "unit: squad-4", "unit: squad-9")
    problem = the_problem(policy_dir)
    assert f"routes.yaml:{line_of(policy_dir, 'routes.yaml', 'unit: squad-9')}:" in str(problem)
    assert "squad-9" in str(problem)
    assert "units.yaml" in problem.message
    assert problem.field == "route.routes.3.routes.1.unit"


def test_unknown_conflict_of_interest_receiver_names_its_line(policy_dir: Path) -> None:
    edit(policy_dir, "routes.yaml", "receiver: legal", "receiver: legal-review")
    problem = the_problem(policy_dir)
    assert f"routes.yaml:{line_of(policy_dir, 'routes.yaml', 'receiver: legal-review')}:" in str(problem)
    assert "legal-review" in str(problem)


def test_bad_priority_names_its_line(policy_dir: Path) -> None:
    edit(
        policy_dir,
        "routes.yaml",
        "match: {alarm_type: night_driving_ban}\n              priority: P1",
        "match: {alarm_type: night_driving_ban}\n              priority: P7",
    )
    problem = the_problem(policy_dir)
    assert f"routes.yaml:{line_of(policy_dir, 'routes.yaml', 'priority: P7')}:" in str(problem)
    assert problem.field.endswith(".priority")
    assert "P1" in problem.message


def test_unknown_matcher_operator_names_its_line(policy_dir: Path) -> None:
    edit(
        policy_dir,
        "routes.yaml",
        "          match: {category: driving_school}\n",
        "          match:\n            category:\n              like: driving_school\n",
    )
    problem = the_problem(policy_dir)
    assert f"routes.yaml:{line_of(policy_dir, 'routes.yaml', 'like: driving_school')}:" in str(problem)
    assert problem.field.endswith("match.category.like")


def test_unknown_matcher_operator_in_a_flow_mapping_names_its_line(policy_dir: Path) -> None:
    edit(policy_dir, "routes.yaml", "{alarm_type: night_driving_ban}", "{alarm_type: {like: night}}")
    problem = the_problem(policy_dir)
    assert f"routes.yaml:{line_of(policy_dir, 'routes.yaml', 'like: night')}:" in str(problem)


def test_invalid_regex_names_its_line(policy_dir: Path) -> None:
    edit(
        policy_dir,
        "routes.yaml",
        "          match: {category: driving_school}\n",
        "          match:\n            category:\n              regex: '(driving'\n",
    )
    problem = the_problem(policy_dir)
    assert f"routes.yaml:{line_of(policy_dir, 'routes.yaml', 'regex:')}:" in str(problem)
    assert "regular expression" in problem.message


def test_duplicate_route_keys_are_refused_and_named(policy_dir: Path) -> None:
    edit(policy_dir, "routes.yaml", "key: complaint.waterway", "key: complaint.passenger")
    problem = the_problem(policy_dir)
    assert "routes.yaml:" in str(problem)
    assert "complaint.passenger" in problem.message


def test_duplicate_route_key_names_the_line_of_the_repeat(policy_dir: Path) -> None:
    edit(policy_dir, "routes.yaml", "key: complaint.waterway", "key: complaint.passenger")
    problem = the_problem(policy_dir)
    repeat = line_of(policy_dir, "routes.yaml", "key: complaint.passenger", occurrence=2)
    assert f"routes.yaml:{repeat}:" in str(problem)


def test_yaml_syntax_error_names_its_line(policy_dir: Path) -> None:
    edit(policy_dir, "routes.yaml", "    - key: checkin\n", "    - key: checkin\n   broken: [\n")
    problem = the_problem(policy_dir)
    assert f"routes.yaml:{line_of(policy_dir, 'routes.yaml', 'broken: [')}:" in str(problem)
    assert "not valid YAML" in problem.message


def test_a_root_route_without_a_default_unit_is_refused(policy_dir: Path) -> None:
    edit(policy_dir, "routes.yaml", "  unit: command-center ", "  # unit: command-center ")
    problem = the_problem(policy_dir)
    assert "routes.yaml:" in str(problem)
    assert "default 'unit'" in problem.message


# ---------------------------------------------------------------- other files


def test_missing_file_is_named(policy_dir: Path) -> None:
    (policy_dir / "deadlines.yaml").unlink()
    problem = the_problem(policy_dir)
    assert "deadlines.yaml" in str(problem)
    assert "cannot read" in problem.message


def test_deadlines_missing_a_default_priority_names_the_priority(policy_dir: Path) -> None:
    edit(policy_dir, "deadlines.yaml", "  P2: {working_days: 3}\n", "")
    problem = the_problem(policy_dir)
    assert f"deadlines.yaml:{line_of(policy_dir, 'deadlines.yaml', 'default:')}:" in str(problem)
    assert "P2" in problem.message


def test_a_kind_without_its_own_limit_for_a_priority_falls_back_to_the_default(policy_dir: Path) -> None:
    edit(policy_dir, "deadlines.yaml", "    P3: {working_days: 3}\n", "")
    policy = load_policy(policy_dir)
    assert policy.deadlines.limit(SignalKind.complaint, Priority.P3).working_days == 5
    assert policy.deadlines.limit(SignalKind.complaint, Priority.P2).working_days == 2


def test_non_positive_hours_name_their_line(policy_dir: Path) -> None:
    edit(
        policy_dir,
        "deadlines.yaml",
        "  P1: {hours: 24}\n  P2: {working_days: 3}",
        "  P1: {hours: 0}\n  P2: {working_days: 3}",
    )
    problem = the_problem(policy_dir)
    assert f"deadlines.yaml:{line_of(policy_dir, 'deadlines.yaml', 'P1: {hours: 0}')}:" in str(problem)


def test_the_shipped_policy_links_at_most_10_open_orders() -> None:
    assert load_policy(POLICY_DIR).triage.correlation.max_related == 10


def test_a_negative_max_related_names_its_line(policy_dir: Path) -> None:
    edit(policy_dir, "triage.yaml", "  max_related: 10\n", "  max_related: -1\n")
    problem = the_problem(policy_dir)
    assert f"triage.yaml:{line_of(policy_dir, 'triage.yaml', 'max_related: -1')}:" in str(problem)
    assert "max_related" in str(problem)


def test_unknown_kind_in_deadlines_names_its_line(policy_dir: Path) -> None:
    edit(policy_dir, "deadlines.yaml", "by_kind:\n  complaint:\n", "by_kind:\n  complaints:\n")
    problem = the_problem(policy_dir)
    assert f"deadlines.yaml:{line_of(policy_dir, 'deadlines.yaml', 'complaints:')}:" in str(problem)


def test_units_without_the_command_center_are_refused(policy_dir: Path) -> None:
    edit(policy_dir, "units.yaml", "  - id: command-center\n", "  - id: dispatch-desk\n")
    found = problems(policy_dir)
    assert any("units.yaml:" in str(p) and "command-center" in p.message for p in found)


def test_duplicate_unit_id_names_the_line_of_the_repeat(policy_dir: Path) -> None:
    edit(policy_dir, "units.yaml", "  - id: squad-3\n", "  - id: squad-2\n")
    problem = the_problem(policy_dir)
    repeat = line_of(policy_dir, "units.yaml", "id: squad-2", occurrence=2)
    assert f"units.yaml:{repeat}:" in str(problem)


def test_every_problem_is_reported_at_once(policy_dir: Path) -> None:
    edit(policy_dir, "routes.yaml", "unit: squad-4", "unit: squad-9")
    edit(policy_dir, "deadlines.yaml", "  P2: {working_days: 3}\n", "")
    with pytest.raises(PolicyError) as caught:
        load_policy(policy_dir)
    text = str(caught.value)
    assert f"routes.yaml:{line_of(policy_dir, 'routes.yaml', 'unit: squad-9')}:" in text
    assert "deadlines.yaml:" in text


def test_a_card_rule_with_two_offsets_names_its_line(policy_dir: Path) -> None:
    edit(
        policy_dir,
        "deadlines.yaml",
        "{level: red, working_days_after: 1}",
        "{level: red, working_days_after: 1, hours_after: 2}",
    )
    problem = the_problem(policy_dir)
    assert f"deadlines.yaml:{line_of(policy_dir, 'deadlines.yaml', 'level: red')}:" in str(problem)
    assert "exactly one of" in str(problem)


def test_two_rules_for_one_card_level_are_refused(policy_dir: Path) -> None:
    edit(
        policy_dir,
        "deadlines.yaml",
        "{level: red, working_days_after: 1}",
        "{level: yellow, hours_before: 2}",
    )
    assert "repeated: yellow" in str(the_problem(policy_dir))


def test_an_unknown_return_reason_names_its_line(policy_dir: Path) -> None:
    edit(policy_dir, "lifecycle.yaml", "  - overlapping_duties\n", "  - overlaping_duties\n")
    problem = the_problem(policy_dir)
    assert f"lifecycle.yaml:{line_of(policy_dir, 'lifecycle.yaml', 'overlaping_duties')}:" in str(problem)


def test_an_acceptance_limit_missing_a_priority_names_its_line(policy_dir: Path) -> None:
    edit(policy_dir, "deadlines.yaml", "    P2: {hours: 4}\n", "")
    problem = the_problem(policy_dir)
    assert f"deadlines.yaml:{line_of(policy_dir, 'deadlines.yaml', 'acceptance:')}:" in str(problem)
    assert "missing ['P2']" in str(problem)


# ---------------------------------------------------------------- figures.yaml


def test_a_negative_score_weight_names_its_file_line_and_field(policy_dir: Path) -> None:
    edit(policy_dir, "figures.yaml", "  satisfied: 25 ", "  satisfied: -25 ")
    problem = the_problem(policy_dir)
    line = line_of(policy_dir, "figures.yaml", "satisfied:")
    assert f"figures.yaml:{line}: score.satisfied:" in str(problem)


def test_a_misspelled_figure_is_refused_at_its_line(policy_dir: Path) -> None:
    edit(policy_dir, "figures.yaml", "  returned: 5 ", "  retuned: 5 ")
    problem = the_problem(policy_dir)
    assert f"figures.yaml:{line_of(policy_dir, 'figures.yaml', 'retuned:')}: score.retuned:" in str(problem)


def test_weights_that_leave_no_figure_are_refused(policy_dir: Path) -> None:
    (policy_dir / "figures.yaml").write_text(
        "score: {accepted_on_time: 0, closed: 0, closed_on_time: 0, satisfied: 0,"
        " reworked: 0, returned: 0, extended: 0}\n",
        encoding="utf-8",
    )
    assert "at least one figure" in str(the_problem(policy_dir))


def test_without_figures_yaml_the_default_weights_apply(policy_dir: Path) -> None:
    shipped = load_policy(policy_dir).figures
    (policy_dir / "figures.yaml").unlink()
    assert load_policy(policy_dir).figures == shipped


def test_the_shipped_cards_warn_an_urgent_order_in_hours_and_the_others_in_working_days() -> None:
    deadlines = load_policy(POLICY_DIR).deadlines
    (yellow,) = [rule for rule in deadlines.cards_for(Priority.P1) if rule.level.value == "yellow"]
    assert (yellow.hours_before, yellow.working_days_before) == (4, None)
    for priority in (Priority.P2, Priority.P3):
        (yellow,) = [rule for rule in deadlines.cards_for(priority) if rule.level.value == "yellow"]
        assert (yellow.working_days_before, yellow.hours_before) == (1, None)


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        pytest.param(
            "    - {level: yellow, hours_before: 4}",
            "    - {level: yellow, working_days_before: 1}",
            "cards_by_priority.P1: the yellow card counts working days back from a deadline in hours",
            id="p1-in-working-days",
        ),
        pytest.param(
            "    - {level: yellow, hours_before: 4}",
            "    - {level: yellow, hours_before: 24}",
            "cards_by_priority.P1: the yellow card is 24 h before a deadline of 24 h",
            id="p1-as-long-as-its-deadline",
        ),
        pytest.param(
            "  - {level: yellow, working_days_before: 1}",
            "  - {level: yellow, working_days_before: 2}",
            "cards: the yellow card is 2 working days before a deadline of 2 working days: it would "
            "fire when a complaint P2 order is opened",
            id="complaint-p2-has-two-days",
        ),
        pytest.param(
            "cards_by_priority:\n  P1:\n    - {level: yellow, hours_before: 4}\n"
            "    - {level: red, hours_after: 0}\n",
            "",
            "cards: the yellow card counts working days back from a deadline in hours",
            id="p1-without-its-own-cards",
        ),
    ],
)
def test_a_card_that_would_fire_when_the_order_is_opened_is_refused_at_start(
    policy_dir: Path, old: str, new: str, said: str
) -> None:
    edit(policy_dir, "deadlines.yaml", old, new)
    problem = the_problem(policy_dir)
    assert "deadlines.yaml:" in str(problem)
    assert said in str(problem), str(problem)


def test_the_shipped_units_are_named_in_chinese_alone_as_officers_read_them() -> None:
    """Unit names appear in the console, reports and notifications: notes for engineers
    belong in the file's comments, not in the name."""
    names = [unit.name for unit in load_policy(POLICY_DIR).units.units]
    assert names and all(not any("a" <= c.lower() <= "z" for c in name) for name in names), names
