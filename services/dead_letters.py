"""Dead letters, from a rejected message: whole, or masked with the original kept apart.

A message that may hold personal data (processors.redaction) is published masked, with the
id of its original bytes; the caller stores the original (``KeptOriginal``) in the same
database transaction as the rest of its batch, before the dead letter is published, so no
dead letter refers to an original that was not kept.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from workorder_pipeline.processors.intake import DEFAULT_MAX_MESSAGE_BYTES, Rejection
from workorder_pipeline.processors.redaction import redact
from workorder_pipeline.schemas.deadletter import DeadLetter, KeptOriginal, Redaction, SourcePosition

if TYPE_CHECKING:
    from workorder_pipeline.services.intake import InboundMessage


@dataclass(frozen=True, slots=True)
class Lettered:
    letter: DeadLetter
    #: The original to keep in the database (None: the letter carries it whole).
    original: KeptOriginal | None


def dead_letter(
    message: InboundMessage,
    rejection: Rejection,
    now: datetime,
    topic_contract: str | None = None,
    max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> Lettered:
    """The dead letter of ``message`` (on a topic carrying ``topic_contract``)."""
    shown = redact(message.value, topic_contract, rejection.reason, rejection.detail, max_bytes)
    original = None
    if shown.redaction is not Redaction.none:
        original = KeptOriginal(
            id=original_id(message),
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value,
            reason=rejection.reason,
            dead_lettered_at=now,
        )
    letter = DeadLetter(
        reason=rejection.reason,
        detail=shown.detail,
        source=SourcePosition(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=base64.b64encode(message.key).decode() if message.key is not None else None,
            timestamp_ms=message.timestamp_ms,
        ),
        payload=base64.b64encode(shown.payload).decode(),
        dead_lettered_at=now,
        redaction=shown.redaction,
        original_id=original.id if original is not None else None,
    )
    return Lettered(letter, original)


def original_id(message: InboundMessage) -> str:
    """The same for a re-delivery of the message (kept once); another for another message at
    the same position of a re-created topic (its timestamp differs). Derived from the position
    only: a hash of the content would let whoever guesses the masked values check the guess."""
    position = f"{message.topic}\x00{message.partition}\x00{message.offset}\x00{message.timestamp_ms}"
    return "dl-" + hashlib.sha256(position.encode()).hexdigest()[:32]


class OriginalsStore(Protocol):
    def purge(self, before: datetime) -> int: ...


class Retention:
    """Deletes the originals of masked dead letters once they are older than ``keep_for``."""

    def __init__(self, store: OriginalsStore, keep_for: timedelta) -> None:
        self._store = store
        self.keep_for = keep_for

    def purge(self, now: datetime) -> int:
        """Delete what is past its time; how many originals were deleted."""
        return self._store.purge(now - self.keep_for)
