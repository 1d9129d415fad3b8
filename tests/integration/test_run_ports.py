"""``wo run`` and its ports: a taken one stops it before anything starts, in one line naming
the setting to change (exit 3); the API is announced only once it serves."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from tests.integration.pipeline_support import PipelineProcess, clean_env, wait_for
from workorder_pipeline.wo.embedded_broker import HOST, free_port
from workorder_pipeline.wo.ports import CannotListen, Listener, serve_api

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
WO = str(ROOT / ".venv" / "bin" / "wo")
EXIT_CONFIG = 3


@pytest.fixture
def run_env(tmp_path: Path) -> dict[str, str]:
    """`wo run` settings on free ports, with the API on (an empty tokens file)."""
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("tokens: []\n")
    return clean_env(
        WO_DATA_DIR=str(tmp_path),
        WO_DATABASE_URL=f"sqlite:///{tmp_path}/wo.db",
        WO_EMBEDDED_BROKER_PORT=str(free_port()),
        WO_METRICS_PORT=str(free_port()),
        WO_API_PORT=str(free_port()),
        WO_API_TOKENS_FILE=str(tokens),
        WO_LOG_FORMAT="json",
    )


@contextlib.contextmanager
def taken(port: int) -> Iterator[socket.socket]:
    """Another program listening on the port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind((HOST, port))
        other.listen()
        yield other


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            "WO_METRICS_PORT",
            "wo: metrics: 127.0.0.1:{port} is already in use (another `wo run`?): "
            "set WO_METRICS_PORT to a free port (or WO_METRICS_HOST)",
        ),
        (
            "WO_EMBEDDED_BROKER_PORT",
            "wo: embedded broker: 127.0.0.1:{port} is already in use (another `wo run`?): "
            "set WO_EMBEDDED_BROKER_PORT to a free port, or WO_KAFKA_BOOTSTRAP to use a running broker",
        ),
        (
            "WO_API_PORT",
            "wo: API: 127.0.0.1:{port} is already in use (another `wo run`?): "
            "set WO_API_PORT to a free port (or WO_API_HOST)",
        ),
    ],
)
def test_a_taken_port_stops_wo_run_in_one_line_naming_the_setting(
    run_env: dict[str, str], setting: str, message: str
) -> None:
    port = int(run_env[setting])
    with taken(port):
        done = subprocess.run([WO, "run"], env=run_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_CONFIG, done.stderr[-3000:]
    assert done.stderr.splitlines()[-1] == message.format(port=port)
    assert "Traceback" not in done.stderr
    # Refused before anything started: no broker, no API announced as serving.
    assert "embedded broker started" not in done.stderr and "api_serving" not in done.stderr


def test_the_api_is_announced_once_it_answers(run_env: dict[str, str], tmp_path: Path) -> None:
    pipeline = PipelineProcess.start(
        [WO, "run"], run_env, tmp_path / "logs", metrics_port=int(run_env["WO_METRICS_PORT"])
    )
    try:

        def announced() -> str | None:
            assert pipeline.process.poll() is None, pipeline.tail()
            for line in pipeline.output().splitlines():
                if '"api_serving"' in line:
                    return str(json.loads(line)["url"])
            return None

        url = wait_for(announced, 90, "api_serving", describe=pipeline.tail)
        assert url == f"http://127.0.0.1:{run_env['WO_API_PORT']}"
        with urllib.request.urlopen(f"{url}/openapi.json", timeout=5) as answer:
            assert answer.status == 200 and json.load(answer)["openapi"]
    finally:
        assert pipeline.stop() == 0, pipeline.tail()


def test_an_api_port_taken_after_the_check_is_refused_not_announced() -> None:
    """The API binds its socket itself: a port taken since `wo run` checked it is refused."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(FastAPI(), host=HOST, port=port, log_config=None))
    listener = Listener("API", HOST, port, "set WO_API_PORT to a free port (or WO_API_HOST)")
    with taken(port), pytest.raises(CannotListen, match=f"API: 127.0.0.1:{port} is already in use"):
        serve_api(server, listener)
    assert not server.started
