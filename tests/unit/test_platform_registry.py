"""policy/platforms.yaml: loaded with the rest of the policy (``wo run`` and ``wo rules
check`` call load_policy_set), every mistake reported at its file, line and field."""

from __future__ import annotations

import shutil
import subprocess
import sys
from datetime import time
from pathlib import Path

import pytest

from workorder_pipeline.schemas.platforms import Cadence, Days
from workorder_pipeline.services.platform_files import PLATFORMS_FILE
from workorder_pipeline.services.policy_files import PolicyError
from workorder_pipeline.services.policy_set import load_policy_set

POLICY_DIR = Path(__file__).resolve().parents[2] / "policy"
REPO = POLICY_DIR.parent
RUN_WO = "import sys; from workorder_pipeline.wo.cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    target = tmp_path / "policy"
    shutil.copytree(POLICY_DIR, target)
    return target


def test_the_shipped_registry_expects_alarms_the_suspect_list_and_hotlines() -> None:
    platforms = {p.id: p for p in load_policy_set(POLICY_DIR).platforms.platforms}
    assert platforms["js-key-vehicles"].cadence is Cadence.continuous
    assert platforms["rectification"].by == time(9, 0)
    hotline = platforms["complaint-12345"]
    assert (hotline.opens, hotline.closes, hotline.days) == (time(8, 30), time(17, 30), Days.working)


def test_without_the_file_no_platform_is_expected(policy_dir: Path) -> None:
    (policy_dir / PLATFORMS_FILE).unlink()
    assert load_policy_set(policy_dir).platforms.platforms == []


def write(policy_dir: Path, body: str) -> None:
    (policy_dir / PLATFORMS_FILE).write_text("platforms:\n" + body, encoding="utf-8")


MISTAKES = [
    # (entries, line, field, words of the message)
    (
        "  - {id: a, name: A, cadence: continuous}\n",
        2,
        "platforms.0",
        "cadence continuous needs silent_after_minutes",
    ),
    (
        "  - id: a\n    name: A\n    cadence: daily\n    by: 9:00\n",
        5,
        "platforms.0.by",
        'a time of day in quotes, e.g. "17:30"',
    ),
    (
        "  - id: a\n    name: A\n    cadence: weekly\n",
        4,
        "platforms.0.cadence",
        "'continuous', 'daily' or 'working_hours'",
    ),
    (
        "  - id: a\n    name: A\n    cadence: daily\n    by: '09:00'\n    silent_after_minutes: 5\n",
        2,
        "platforms.0",
        "cadence daily takes no silent_after_minutes",
    ),
    (
        "  - {id: a, name: A, cadence: working_hours, opens: '18:00', closes: '08:00',\n"
        "     silent_after_minutes: 60}\n",
        2,
        "platforms.0",
        "opens must be before closes",
    ),
    (
        "  - {id: 苏F12345, name: A, cadence: continuous, silent_after_minutes: 5}\n",
        2,
        "platforms.0.id",
        "should match pattern",
    ),
    (
        "  - {id: a, name: A, cadence: continuous, silent_after_minutes: 5}\n"
        "  - {id: a, name: B, cadence: continuous, silent_after_minutes: 9}\n",
        3,
        "platforms.1.id",
        "platform ids must be unique; repeated: a",
    ),
]


@pytest.mark.parametrize(("entries", "line", "field", "words"), MISTAKES)
def test_a_mistake_is_reported_at_its_line_and_field(
    policy_dir: Path, entries: str, line: int, field: str, words: str
) -> None:
    write(policy_dir, entries)
    with pytest.raises(PolicyError) as raised:
        load_policy_set(policy_dir)
    [problem] = raised.value.problems
    assert (problem.file, problem.line, problem.field) == (policy_dir / PLATFORMS_FILE, line, field)
    assert words in problem.message


def test_wo_rules_check_refuses_what_wo_run_refuses(policy_dir: Path) -> None:
    write(policy_dir, "  - {id: a, name: A, cadence: daily, by: 9:00}\n")
    # A process of its own: the command line sets up logging for the whole process.
    done = subprocess.run(
        [sys.executable, "-c", RUN_WO, "rules", "check", str(policy_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert f"{policy_dir / PLATFORMS_FILE}:2: platforms.0.by:" in done.stderr
