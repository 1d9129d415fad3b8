"""A broker that stops answering while ``wo run`` sets up its topics is waited for, as at
start, instead of ending the worker (README, "Outages: nothing stops the pipeline")."""

from __future__ import annotations

import threading
import time

import pytest

from tests.integration.pipeline_support import HeldPort
from workorder_pipeline.config.settings import Settings
from workorder_pipeline.streams.kafka.admin import TopicSetupError
from workorder_pipeline.wo.broker_keeper import BROKER_SEEN_WITHIN_S
from workorder_pipeline.wo.embedded_broker import EmbeddedBroker
from workorder_pipeline.wo.pipeline import set_up_topics

pytestmark = [pytest.mark.integration]

#: ensure_topics' own deadline for one setting-up (streams/kafka/admin.py), and some.
TOPIC_SETUP_DEADLINE_S = 20 + 5


def test_topic_set_up_outlasts_a_broker_gone_quiet_and_finishes_when_it_answers() -> None:
    with HeldPort() as port:
        settings = Settings(kafka_bootstrap=f"127.0.0.1:{port.port}")
        outcome: dict[str, object] = {}

        def set_up() -> None:
            try:
                outcome["partitions"] = set_up_topics(settings)
            except BaseException as exc:  # what the worker would have exited with
                outcome["error"] = exc

        setting_up = threading.Thread(target=set_up, daemon=True)
        setting_up.start()
        time.sleep(TOPIC_SETUP_DEADLINE_S)
        assert outcome == {}, outcome  # past the topics' deadline: still waiting, no error
        port.release()
        with EmbeddedBroker(port.port):
            setting_up.join(BROKER_SEEN_WITHIN_S + 30)
            assert not setting_up.is_alive()

    assert "error" not in outcome, outcome
    partitions = outcome["partitions"]
    assert isinstance(partitions, dict)
    assert partitions == {topic: settings.topic_partitions for topic in settings.topics.all()}


def test_a_broker_that_refuses_the_topics_ends_the_start_at_once() -> None:
    """A refusal is not waited out: a replication factor the one broker cannot give."""
    with EmbeddedBroker() as broker:
        settings = Settings(kafka_bootstrap=broker.bootstrap, topic_replication_factor=3)
        started = time.monotonic()
        with pytest.raises(TopicSetupError, match="replication_factor 3"):
            set_up_topics(settings)
        assert time.monotonic() - started < TOPIC_SETUP_DEADLINE_S
