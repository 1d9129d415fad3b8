"""Every dead letter is counted in the database (the monthly report's 死信 tables), in its
batch's transaction, once per message however often it is delivered."""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.integration.test_dead_letter_originals import BAD_COMPLAINT, NOW, TOPICS, alarm_line, intake
from workorder_pipeline.services.intake import InboundMessage


def logged(engine: Engine) -> Counter[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT topic, reason FROM dead_letter_log"))
        return Counter((row.topic, row.reason) for row in rows)


def test_every_dead_letter_is_counted_once_by_topic_and_reason_even_when_redelivered(engine: Engine) -> None:
    messages = [
        InboundMessage(TOPICS.vehicle_alarms, 0, 10, b"k", alarm_line(), 1_795_000_000_000),
        InboundMessage(TOPICS.vehicle_alarms, 0, 11, None, b"\xff\xfe not utf-8", 1_795_000_000_001),
        InboundMessage(TOPICS.vehicle_alarms, 0, 12, None, b"[1, 2]", 1_795_000_000_002),
        InboundMessage(TOPICS.complaints, 1, 20, b"T-1", BAD_COMPLAINT, 1_795_000_000_003),
        InboundMessage(TOPICS.complaints, 1, 21, None, None, 1_795_000_000_004),
    ]
    service = intake(engine)
    first = service.handle(messages, NOW)
    service.handle(messages, NOW)  # re-delivered after a crash: counted once
    expected = Counter((letter.source.topic, letter.reason.value) for letter in first.dead_letters)
    assert sum(expected.values()) == 4
    assert logged(engine) == expected
    # The same offset of a re-created topic (another timestamp) is another message.
    again = InboundMessage(TOPICS.vehicle_alarms, 0, 11, None, b"\xff", 1_796_000_000_000)
    service.handle([again], NOW)
    assert logged(engine)[TOPICS.vehicle_alarms, "not_utf8"] == 2
