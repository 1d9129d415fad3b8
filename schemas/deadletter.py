"""Dead letters: a message the pipeline could not use, with the reason.

The message travels whole unless it may hold personal data (a complaint, or anything on a
complaint topic): then the topic carries a masked copy and a reference to the original
bytes, which the database keeps for a while (``dead_letter_original``, command center only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RejectionReason(StrEnum):
    """Why a message was rejected. A closed set: it is a metric label."""

    not_utf8 = "not_utf8"
    not_json = "not_json"
    not_an_object = "not_an_object"
    missing_contract = "missing_contract"
    unknown_contract = "unknown_contract"
    wrong_topic = "wrong_topic"
    bad_plate = "bad_plate"
    missing_offset = "missing_offset"
    invalid_field = "invalid_field"
    too_large = "too_large"
    duplicate_key = "duplicate_key"
    implausible_time = "implausible_time"
    #: A tombstone (null value) or a message with no bytes.
    empty_message = "empty_message"
    #: U+0000 somewhere in the message, field names included: no database keeps it as sent.
    invalid_character = "invalid_character"
    #: Nested deeper, or an object with more fields, than the pipeline takes (processors.intake).
    too_complex = "too_complex"
    #: Valid, but processing failed on it alone for a reason that a retry will not change
    #: (the detail names the error's class, never its message).
    unprocessable = "unprocessable"


class Redaction(StrEnum):
    """What ``payload`` holds."""

    #: The original bytes.
    none = "none"
    #: The message with its personal fields, and any other text repeating them, masked as ``***``.
    personal_fields = "personal_fields"
    #: Nothing (empty): the message may be personal and could not be read to be masked.
    withheld = "withheld"


class SourcePosition(BaseModel):
    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int
    offset: int
    key: str | None = Field(default=None, description="The message key, base64")
    timestamp_ms: int | None = None


class DeadLetter(BaseModel):
    """``workorders.dead-letters`` (key: the original key), version 1."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    contract: Literal["dead-letter/1"] = Field(default="dead-letter/1", alias="schema")
    reason: RejectionReason
    detail: str = Field(description="What exactly was wrong, for a person to read")
    source: SourcePosition
    payload: str = Field(
        description="Base64: the original bytes; or, when `redaction` is not none, the masked "
        "copy (personal_fields) or nothing (withheld)"
    )
    dead_lettered_at: datetime
    redaction: Redaction = Field(default=Redaction.none, description="What `payload` holds")
    original_id: str | None = Field(
        default=None,
        description="When redacted: the id of the original bytes kept in the database "
        "(GET /dead-letters/{id}/original, command center only, for a limited time)",
    )


@dataclass(frozen=True, slots=True)
class KeptOriginal:
    """A redacted dead letter's original message, for the database (not for any topic)."""

    id: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: RejectionReason
    dead_lettered_at: datetime
