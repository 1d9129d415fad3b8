"""The worker's producer puts each keyed message on the partition aiokafka's ``send`` would:
a consumer of a squad's messages reads them in order only if they share one partition."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from workorder_pipeline.config.settings import Settings
from workorder_pipeline.streams import outputs
from workorder_pipeline.streams.outputs import Outputs

KEYS = [
    b"",
    b"squad-2",
    b"command-center",
    "苏F12345".encode(),
    b"\x00\xff" * 300,
    *(f"squad-{n}".encode() for n in range(200)),
]


@pytest.mark.parametrize("count", [1, 3, 6, 7, 64])
def test_a_key_goes_to_the_partition_aiokafka_would_choose(count: int) -> None:
    producer = Outputs(Settings(kafka_bootstrap="127.0.0.1:9092"))
    partitions = list(range(count))
    for _ in range(2):  # the second time from what was remembered
        for key in KEYS:
            assert producer._partition(key, partitions) == DefaultPartitioner()(key, partitions, partitions)


def test_a_key_seen_with_fewer_partitions_is_placed_again_when_the_topic_grows() -> None:
    producer = Outputs(Settings(kafka_bootstrap="127.0.0.1:9092"))
    moved = [
        k
        for k in KEYS
        if DefaultPartitioner()(k, [0, 1, 2], [0, 1, 2]) != DefaultPartitioner()(k, list(range(6)), [])
    ]
    assert moved
    for key in moved:
        producer._partition(key, [0, 1, 2])
        assert producer._partition(key, list(range(6))) == DefaultPartitioner()(key, list(range(6)), [])


def test_endless_distinct_keys_keep_the_memory_bounded_and_the_choice_right(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outputs, "PARTITION_MEMO_SIZE", 16)
    producer = Outputs(Settings(kafka_bootstrap="127.0.0.1:9092"))
    partitions = list(range(6))
    for n in range(1000):
        key = f"publisher-key-{n}".encode()
        assert producer._partition(key, partitions) == DefaultPartitioner()(key, partitions, partitions)
        assert len(producer._partition_index) <= 16


def test_a_message_without_a_key_goes_to_some_partition_of_the_topic() -> None:
    producer = Outputs(Settings(kafka_bootstrap="127.0.0.1:9092"))
    assert {producer._partition(None, [0, 1, 2]) for _ in range(200)} == {0, 1, 2}
