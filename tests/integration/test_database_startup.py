"""Starting with the database down: a clear error after retries, not a crash loop."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.pipeline_support import clean_env
from workorder_pipeline.storage.database import DatabaseUnavailable, wait_for_database
from workorder_pipeline.wo.embedded_broker import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_waiting_for_an_unreachable_database_retries_then_names_it() -> None:
    url = f"postgresql+psycopg://postgres:hunter2@127.0.0.1:{free_port()}/workorders"
    retries: list[float] = []
    with pytest.raises(DatabaseUnavailable) as error:
        wait_for_database(
            url, timeout_s=1.6, on_retry=lambda delay, _exc: retries.append(delay), first_delay_s=0.2
        )
    assert retries == [0.2, 0.4, 0.8]
    message = str(error.value)
    assert "unreachable for 1.6 s" in message
    assert "127.0.0.1" in message
    assert "hunter2" not in message  # the password is never printed


def test_wo_run_with_the_database_down_exits_with_a_clear_message(tmp_path: Path) -> None:
    env = clean_env(
        WO_DATA_DIR=str(tmp_path),
        WO_EMBEDDED_BROKER_PORT=str(free_port()),
        WO_METRICS_PORT=str(free_port()),
        WO_DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/workorders",
        WO_DATABASE_STARTUP_WAIT_S="2",
        WO_LOG_FORMAT="json",
    )
    run = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "wo"), "run"], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 4, run.stderr[-2000:]
    assert "database_unavailable" in run.stderr  # each retry is logged
    assert "unreachable for 2 s" in run.stderr.splitlines()[-1]


def test_wo_run_waits_for_a_database_that_is_down_as_long_as_it_takes(tmp_path: Path) -> None:
    """By default the worker never gives up on the database: it says what it waits for,
    and a SIGTERM ends it at once."""
    env = clean_env(
        WO_DATA_DIR=str(tmp_path),
        WO_EMBEDDED_BROKER_PORT=str(free_port()),
        WO_METRICS_PORT=str(free_port()),
        WO_DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/workorders",
        WO_LOG_FORMAT="json",
    )
    log = tmp_path / "stderr.log"
    with log.open("wb") as stderr:
        run = subprocess.Popen([str(ROOT / ".venv" / "bin" / "wo"), "run"], env=env, stderr=stderr)
        try:
            # Past several retries (0.5 s doubling); a loaded machine may take long to start.
            deadline = time.monotonic() + 90
            while log.read_text().count('"database_unavailable"') < 3 and time.monotonic() < deadline:
                assert run.poll() is None, log.read_text()[-2000:]
                time.sleep(0.5)
            assert run.poll() is None, log.read_text()[-2000:]
            run.send_signal(signal.SIGTERM)
            run.wait(timeout=15)
        finally:
            if run.poll() is None:
                run.kill()
    text = log.read_text()
    assert text.count('"database_unavailable"') >= 3
