"""The command line answers expected failures in one line with a documented exit code, and
``wo publish`` keys and routes every contract as contracts.md says."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.wo.cli import main
from workorder_pipeline.wo.embedded_broker import free_port
from workorder_pipeline.wo.publish import _key, infer_topic

ROOT = Path(__file__).resolve().parents[2]
WO = ROOT / ".venv" / "bin" / "wo"
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 4


def run_wo(*args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    done = subprocess.run(
        [str(WO), *args], capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", **env}
    )
    return done, time.monotonic() - started


def test_orders_with_the_api_down_says_so_in_one_line() -> None:
    done, _ = run_wo("orders", "list", WO_API_URL=f"http://127.0.0.1:{free_port()}", WO_API_TOKEN="t")
    assert done.returncode == EXIT_UNAVAILABLE
    assert done.stderr.count("\n") == 1 and "did not answer" in done.stderr and "Traceback" not in done.stderr


def test_publish_with_the_broker_down_says_so_at_once() -> None:
    done, seconds = run_wo(
        "publish", str(ROOT / "samples" / "vehicle-alarms.jsonl"), WO_EMBEDDED_BROKER_PORT=str(free_port())
    )
    assert done.returncode == EXIT_UNAVAILABLE
    assert done.stderr.count("\n") == 1 and "no broker answers" in done.stderr
    assert seconds < 20, f"took {seconds:.1f} s"  # kafka-python alone retried for ~30 s


@pytest.mark.parametrize(
    ("document", "key"),
    [
        ({"schema": "vehicle-alarm/1", "plate": "苏A12345"}, "苏A12345"),
        ({"schema": "suspect/1", "plate": "苏E66F88"}, "苏E66F88"),
        ({"schema": "checkin-failure/1", "enterprise": {"id": "E-1"}}, "E-1"),
        ({"schema": "complaint/1", "ticket_id": "NT12345-1"}, "NT12345-1"),
        ({"schema": "workorder-command/1", "work_order_id": "WO-VA-1"}, "WO-VA-1"),
        ({"schema": "workorder-command/1"}, None),
        ({"schema": "something-else/1", "plate": "苏A12345"}, None),
    ],
)
def test_every_contract_is_keyed_as_its_contract_says(document: dict[str, object], key: str | None) -> None:
    assert _key(json.dumps(document).encode()) == (key.encode() if key else None)


def test_a_file_of_commands_goes_to_the_commands_topic(tmp_path: Path) -> None:
    commands = tmp_path / "my-commands.jsonl"
    commands.write_text(json.dumps({"schema": "workorder-command/1", "work_order_id": "WO-1"}) + "\n")
    settings = Settings(kafka_bootstrap="127.0.0.1:9092")
    assert infer_topic(settings, commands) == settings.topics.commands


def test_publishing_commands_without_a_key_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    commands = tmp_path / "commands.jsonl"
    commands.write_text(json.dumps({"schema": "workorder-command/1", "work_order_id": "WO-1"}) + "\n")
    done, _ = run_wo("publish", str(commands), WO_EMBEDDED_BROKER_PORT=str(free_port()))
    assert done.returncode == 1
    assert "commands are signed: pass --key" in done.stderr


@pytest.mark.parametrize("name", ["nofile.json", "a-directory"])
def test_explain_of_a_missing_file_says_so_in_one_line(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-directory").mkdir()
    event = tmp_path / name
    assert main(["rules", "explain", str(event)]) == EXIT_USAGE
    out, err = capsys.readouterr()
    reason = "No such file or directory" if name == "nofile.json" else "Is a directory"
    assert (out, err) == ("", f"wo rules explain: {event}: {reason}\n")
