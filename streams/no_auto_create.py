"""No aiokafka client of ours (nor faust's) may make the broker create a topic.

aiokafka 0.14 has no ``allow_auto_create_topics`` option (kafka-python has one, default
True): every metadata request it sends for named topics (a consumer's subscription, a
producer's first send) carries ``allow_auto_topic_creation=True``. A broker with
auto-creation on (Tansu always; Kafka's ``auto.create.topics.enable`` default) then
creates a topic it does not have with *its* default partition count: after the embedded
broker lost its topics, the worker consumed an auto-created 4-partition copy of a
6-partition topic. Measured on Tansu 0.6.0: a request with the flag False answers
UNKNOWN_TOPIC_OR_PARTITION and creates nothing. Topics are created only explicitly, by
``wo.embedded_broker.ensure_topics``, with the intended partition count.

faust builds its own aiokafka clients, so the flag is set where aiokafka builds the
request (its client and admin client modules), not per client.
"""

from __future__ import annotations

import aiokafka.admin.client
import aiokafka.client
from aiokafka.protocol.metadata import MetadataRequest


class NoAutoCreateMetadataRequest(MetadataRequest):  # type: ignore[misc]
    """aiokafka's MetadataRequest, asking the broker not to create the topics it names."""

    def __init__(self, topics: list[str] | None = None, allow_auto_topic_creation: bool = False) -> None:
        super().__init__(topics, allow_auto_topic_creation)


def install() -> None:
    """Idempotent; checks that aiokafka still builds its requests where we set the flag."""
    for module in (aiokafka.client, aiokafka.admin.client):
        if not hasattr(module, "MetadataRequest"):
            raise RuntimeError(
                f"{module.__name__} no longer uses MetadataRequest: streams/no_auto_create.py "
                "must be updated for this aiokafka version"
            )
        module.MetadataRequest = NoAutoCreateMetadataRequest
