"""While ``wo run`` waits for its broker, kafka-python's own lines are left out after the
first attempt's, and come back once the broker answers (wo/broker_keeper.py)."""

from __future__ import annotations

import logging

import pytest

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.wo import broker_keeper


def test_kafka_pythons_lines_are_quiet_while_waiting_and_back_once_the_broker_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kafka_log = logging.getLogger("kafka")
    monkeypatch.setattr(kafka_log, "level", logging.WARNING)
    levels_seen: list[int] = []
    answers = iter([ConnectionRefusedError(), ConnectionRefusedError(), None])

    def attempt(settings: Settings) -> Exception | None:
        levels_seen.append(kafka_log.level)
        return next(answers)

    monkeypatch.setattr(broker_keeper, "_attempt", attempt)
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    broker_keeper.wait_for_broker(Settings(kafka_bootstrap="127.0.0.1:1"))

    # The first attempt is heard (why it failed), the retries are not.
    assert levels_seen == [logging.WARNING, logging.CRITICAL, logging.CRITICAL]
    assert kafka_log.level == logging.WARNING


def test_kafka_pythons_lines_come_back_when_the_wait_is_interrupted(monkeypatch: pytest.MonkeyPatch) -> None:
    kafka_log = logging.getLogger("kafka")
    monkeypatch.setattr(kafka_log, "level", logging.WARNING)
    monkeypatch.setattr(broker_keeper, "_attempt", lambda settings: ConnectionRefusedError())

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("time.sleep", interrupted)
    with pytest.raises(KeyboardInterrupt):
        broker_keeper.wait_for_broker(Settings(kafka_bootstrap="127.0.0.1:1"))
    assert kafka_log.level == logging.WARNING
