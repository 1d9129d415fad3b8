"""The ports ``wo run`` listens on: checked before anything starts, so a taken one stops it
in one line naming the setting to change (exit 3), not half-way with a traceback."""

from __future__ import annotations

import errno
import socket
import threading
import time
from dataclasses import dataclass

import uvicorn

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.schemas.errors import ConfigurationError

#: How long the API may take to start serving on its socket (it starts in ~0.1 s).
API_START_TIMEOUT_S = 15.0


class CannotListen(ConfigurationError):
    """A port ``wo run`` needs cannot be listened on: a configuration problem, exit code 3."""


@dataclass(frozen=True, slots=True)
class Listener:
    what: str
    host: str
    port: int
    #: What to set instead, naming the settings.
    fix: str

    def refusal(self, error: OSError) -> CannotListen:
        where = f"{self.host}:{self.port}"
        if error.errno == errno.EADDRINUSE:
            problem = f"{where} is already in use (another `wo run`?)"
        else:
            problem = f"cannot listen on {where} ({error.strerror or error})"
        return CannotListen(f"{self.what}: {problem}: {self.fix}")


def listeners(settings: Settings, *, api: bool = True) -> list[Listener]:
    """Every port this run will listen on (port 0: any free one, nothing to check); ``api``:
    whether this process serves the API."""
    wanted = [metrics_listener(settings)]
    if settings.embedded_broker:
        wanted.append(
            Listener(
                "embedded broker",
                "127.0.0.1",
                settings.embedded_broker_port,
                "set WO_EMBEDDED_BROKER_PORT to a free port, or WO_KAFKA_BOOTSTRAP to use a running broker",
            )
        )
    if api and settings.api_tokens_file is not None:
        wanted.append(api_listener(settings))
    return [listener for listener in wanted if listener.port != 0]


def metrics_listener(settings: Settings) -> Listener:
    return Listener(
        "metrics",
        settings.metrics_host,
        settings.metrics_port,
        "set WO_METRICS_PORT to a free port (or WO_METRICS_HOST)",
    )


def api_listener(settings: Settings) -> Listener:
    return Listener(
        "API", settings.api_host, settings.api_port, "set WO_API_PORT to a free port (or WO_API_HOST)"
    )


def check_ports(settings: Settings, *, api: bool = True) -> None:
    """Raise CannotListen for the first port that cannot be bound now."""
    for listener in listeners(settings, api=api):
        bind(listener).close()


def bind(listener: Listener) -> socket.socket:
    """A socket bound to the listener's address, as servers bind: with SO_REUSEADDR, so the
    connections of a run just stopped (TIME_WAIT) do not count; a listener does."""
    family = socket.AF_INET6 if ":" in listener.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((listener.host, listener.port))
    except OSError as exc:
        sock.close()
        raise listener.refusal(exc) from None
    return sock


def serve_api(server: uvicorn.Server, listener: Listener) -> str:
    """Serve the API in a thread on a socket bound here (CannotListen if it cannot be), and
    return its URL once it is serving."""
    sock = bind(listener)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + API_START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the API did not start serving on {listener.host}:{listener.port}")
        time.sleep(0.02)
    host = f"[{listener.host}]" if ":" in listener.host else listener.host
    return f"http://{host}:{sock.getsockname()[1]}"
