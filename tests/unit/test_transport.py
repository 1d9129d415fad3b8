"""streams.transport: the worker's aiokafka consumer gets the configured fetch wait.

No broker: the consumer is built as faust builds it, and inspected before it starts.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import faust
import pytest
from pydantic import ValidationError
from yarl import URL

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.streams import transport
from workorder_pipeline.streams.transport import (
    FAUST_FETCH_MAX_WAIT_MS,
    broker_url,
    fetch_max_wait_from,
)

BOOTSTRAP = "127.0.0.1:1"  # nothing listens: the consumer is built, never started


def built_consumer(broker: str) -> Any:
    """The aiokafka consumer faust's worker would start for an app with this broker URL."""

    async def build() -> Any:
        app = faust.App("test-transport", broker=broker, web_enabled=False)
        thread: Any = cast(Any, app.consumer)._thread
        consumer = thread._create_consumer(loop=asyncio.get_running_loop())
        assert consumer._fetcher is None  # not started: its Fetcher would take the value set now
        await consumer.stop()  # never started: this only closes its client
        return consumer

    return asyncio.run(build())


@pytest.mark.parametrize("wait_ms", [0, 100, 250])
def test_the_worker_consumer_waits_the_configured_time(wait_ms: int) -> None:
    consumer = built_consumer(broker_url(BOOTSTRAP, wait_ms))

    assert consumer._fetch_max_wait_ms == wait_ms


def test_everything_else_is_faust_s_consumer() -> None:
    ours = built_consumer(broker_url(BOOTSTRAP, 100))
    faust_s = built_consumer(f"kafka://{BOOTSTRAP}")

    assert faust_s._fetch_max_wait_ms == FAUST_FETCH_MAX_WAIT_MS  # the hard-coded value we override
    assert ours._client._bootstrap_servers == faust_s._client._bootstrap_servers == [BOOTSTRAP]
    for attribute in ("_group_id", "_enable_auto_commit", "_max_poll_records", "_isolation_level"):
        assert getattr(ours, attribute) == getattr(faust_s, attribute), attribute


def test_the_app_uses_this_transport_for_its_scheme() -> None:
    app = faust.App("test-transport-scheme", broker=broker_url("a:9092,b:9093", 100), web_enabled=False)

    assert isinstance(app.transport, transport.Transport)
    assert isinstance(app.consumer, transport.Consumer)
    assert app.transport.fetch_max_wait_ms == 100
    assert [(url.host, url.port) for url in app.conf.broker] == [("a", 9092), ("b", 9093)]


def test_without_the_parameter_faust_s_choice_stands() -> None:
    consumer = built_consumer(f"{transport.SCHEME}://{BOOTSTRAP}")

    assert consumer._fetch_max_wait_ms == FAUST_FETCH_MAX_WAIT_MS


def test_the_setting_reaches_the_consumer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WO_CONSUMER_FETCH_MAX_WAIT_MS", "40")
    settings = Settings()

    consumer = built_consumer(broker_url(settings.bootstrap_servers, settings.consumer_fetch_max_wait_ms))

    assert consumer._fetch_max_wait_ms == 40
    assert Settings.model_fields["consumer_fetch_max_wait_ms"].default == 100


@pytest.mark.parametrize(
    ("urls", "problem"),
    [
        (["wo+kafka://a:1?fetch_max_wait_ms=x"], "must be an integer"),
        (["wo+kafka://a:1?fetch_max_wait_ms=-1"], "must be in 0..60000"),
        (["wo+kafka://a:1?fetch_max_wait_ms=100", "wo+kafka://b:1?fetch_max_wait_ms=200"], "conflicting"),
    ],
)
def test_a_bad_wait_in_the_url_is_refused(urls: list[str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        fetch_max_wait_from([URL(url) for url in urls])


def test_the_setting_is_validated() -> None:
    with pytest.raises(ValidationError, match="consumer_fetch_max_wait_ms"):
        Settings(consumer_fetch_max_wait_ms=-1)


def test_broker_url_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="must be in"):
        broker_url(BOOTSTRAP, 60_001)
    with pytest.raises(ValueError, match="empty"):
        broker_url(" , ", 100)
