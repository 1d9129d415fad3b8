"""The parse-only faust agent, run as a child process of the benchmark."""

from __future__ import annotations

import time
from typing import Any

from benchkit.common import ALARM_CONTRACT, BATCH_SECONDS, BATCH_SIZE
from workorder_pipeline.processors.intake import decode_event

# --- the faust parse-only agent (a child process) ------------------------------------------


def faust_child(config: dict[str, Any]) -> int:
    """A faust app whose agent only decodes (validates) each alarm; prints BENCH READY once
    the warm-up messages are through and BENCH DONE <monotonic time> at the target count."""
    import faust

    from workorder_pipeline.streams.transport import broker_url

    app = faust.App(
        config["group"],
        broker=broker_url(config["bootstrap"], 100),
        datadir=config["datadir"],
        web_enabled=False,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        topic_partitions=config["partitions"],
        broker_rebalance_timeout=3,
        broker_session_timeout=10,
        broker_heartbeat_interval=1,
        broker_commit_every=BATCH_SIZE,
    )
    topic = app.topic(config["topic"], key_type=bytes, value_type=bytes)
    warmup, target = int(config["warmup"]), int(config["target"])
    count = 0

    def counted(n: int) -> None:
        nonlocal count
        before, count = count, count + n
        if before < warmup <= count:
            print("BENCH READY", flush=True)
        if before < target <= count:
            print(f"BENCH DONE {time.monotonic():.6f}", flush=True)

    if config["mode"] == "event":

        @app.agent(topic, name="parse")
        async def parse_each(stream: Any) -> Any:
            async for value in stream:
                decode_event(value, ALARM_CONTRACT)
                counted(1)
                yield None

    else:

        @app.agent(topic, name="parse")
        async def parse_batches(stream: Any) -> Any:
            async for events in stream.noack_take(BATCH_SIZE, BATCH_SECONDS):
                for event in events:
                    decode_event(event.message.value, ALARM_CONTRACT)
                for event in events:
                    await stream.ack(event)
                counted(len(events))
                yield None

    worker = faust.Worker(app, loglevel="info", quiet=True, redirect_stdouts=False)
    worker.spinner = None  # as wo run: no terminal spinner
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0
