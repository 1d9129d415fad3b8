"""faust's aiokafka transport, with the consumer's fetch wait taken from the broker URL.

faust-streaming 0.15.3 builds its worker's aiokafka consumer with a hard-coded
``fetch_max_wait_ms=1500`` (``AIOKafkaConsumerThread._create_worker_consumer``) and has
no setting for it. A broker that answers a fetch only when that wait expires (Tansu,
the embedded broker) then holds every event for up to 1.5 s before the worker sees it
(see ../shared/stack-notes.md). This module is faust's own aiokafka transport with one
change: the consumer's fetch wait is read from the ``fetch_max_wait_ms`` query parameter
of the broker URL, under the URL scheme ``wo+kafka``::

    faust.App(..., broker=broker_url("127.0.0.1:19092", fetch_max_wait_ms=100))
    # -> "wo+kafka://127.0.0.1:19092?fetch_max_wait_ms=100"

faust picks a transport class by the scheme of the broker URL (``faust.transport.
drivers.TRANSPORTS``, a plugin registry); importing this module registers the scheme.
Everything else (producer, topic creation, rebalancing, offsets) is faust's unchanged.
Without the query parameter the transport is faust's, unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, cast

from faust.transport import drivers
from faust.transport.drivers import aiokafka as faust_aiokafka
from yarl import URL

from workorder_pipeline.streams.batch_consumer import CONSUMER_STOP_WAIT_S
from workorder_pipeline.streams.resilience import close_quietly

#: The broker URL scheme of this transport (faust's own is ``kafka``).
SCHEME = "wo+kafka"
#: The broker URL query parameter carrying the consumer's fetch wait, in milliseconds.
FETCH_MAX_WAIT_PARAM = "fetch_max_wait_ms"
#: What faust 0.15.3 hard-codes for its worker consumer.
FAUST_FETCH_MAX_WAIT_MS = 1500
#: Bounds: well under faust's request timeout (``broker_request_timeout``, 90 s); 0 makes
#: the consumer fetch without waiting (busy polling while there is no data).
MAX_FETCH_MAX_WAIT_MS = 60_000


def broker_url(bootstrap_servers: str, fetch_max_wait_ms: int) -> str:
    """The faust ``broker`` URL for ``host:port[,host:port]`` using this transport."""
    _check_wait(fetch_max_wait_ms)
    servers = [server.strip() for server in bootstrap_servers.split(",") if server.strip()]
    if not servers:
        raise ValueError("bootstrap_servers is empty")
    # faust splits the URL on ',' and ';'; the query stays with the last server's URL.
    return f"{SCHEME}://{';'.join(servers)}?{FETCH_MAX_WAIT_PARAM}={fetch_max_wait_ms}"


def fetch_max_wait_from(urls: Sequence[URL]) -> int | None:
    """The fetch wait the broker URLs ask for; None when none does (faust's choice stands)."""
    values = {url.query[FETCH_MAX_WAIT_PARAM] for url in urls if FETCH_MAX_WAIT_PARAM in url.query}
    if not values:
        return None
    if len(values) > 1:
        raise ValueError(f"conflicting {FETCH_MAX_WAIT_PARAM} in the broker URLs: {sorted(values)}")
    (value,) = values
    try:
        wait = int(value)
    except ValueError:
        raise ValueError(f"{FETCH_MAX_WAIT_PARAM} must be an integer (ms), got {value!r}") from None
    _check_wait(wait)
    return wait


def _check_wait(wait: int) -> None:
    if not 0 <= wait <= MAX_FETCH_MAX_WAIT_MS:
        raise ValueError(f"{FETCH_MAX_WAIT_PARAM} must be in 0..{MAX_FETCH_MAX_WAIT_MS}, got {wait}")


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """faust's consumer thread; the aiokafka consumer it builds waits what the URL says."""

    def _create_consumer(self, loop: Any) -> Any:
        # faust builds the consumer with every other setting; aiokafka reads the fetch wait
        # when the consumer starts (it hands it to its Fetcher in ``start()``), so setting
        # it between construction and start is the whole override.
        consumer = super()._create_consumer(loop)
        wait = cast(Transport, self.transport).fetch_max_wait_ms
        if wait is None:
            return consumer
        if not hasattr(consumer, "_fetch_max_wait_ms") or getattr(consumer, "_fetcher", None) is not None:
            raise RuntimeError(
                "aiokafka's AIOKafkaConsumer no longer keeps _fetch_max_wait_ms until start(): "
                "streams/transport.py must be updated for this aiokafka version"
            )
        consumer._fetch_max_wait_ms = wait
        return consumer

    async def on_thread_stop(self) -> None:
        # faust's own awaits consumer.stop() bare: with the broker gone, aiokafka 0.14 lets the
        # CancelledError of its fetch task escape it, the thread never reports that it stopped,
        # and the worker hangs on SIGTERM (seen: a Kafka node killed under a busy worker).
        await super(faust_aiokafka.AIOKafkaConsumerThread, self).on_thread_stop()  # the method queue
        if self._consumer is not None:
            await close_quietly(self._consumer.stop(), CONSUMER_STOP_WAIT_S, "faust consumer")


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """faust's aiokafka transport (``kafka://``) with the consumer's fetch wait configurable."""

    Consumer: ClassVar[type[Consumer]] = Consumer

    def __init__(self, url: list[URL], app: Any, loop: Any = None) -> None:
        super().__init__(url, app, loop=loop)
        #: Milliseconds the broker may hold a fetch while it has no data (None: faust's).
        self.fetch_max_wait_ms: int | None = fetch_max_wait_from(url)


drivers.TRANSPORTS.aliases[SCHEME] = f"{__name__}:Transport"
