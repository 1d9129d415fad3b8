"""Turn a message's bytes into an inbound event, or into a rejection that says why.

The fast path is one pydantic call against the topic's contract; the slower diagnosis
runs only for messages that fail it, to give the dead letter a precise reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

import jiter
from pydantic import BaseModel, ValidationError

from schemas.commands import WorkOrderCommand
from schemas.deadletter import RejectionReason
from schemas.inbound import CONTRACTS, InboundEvent

DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectionReason
    detail: str


def decode_event(
    raw: bytes, expected_contract: str, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> InboundEvent | Rejection:
    """Validate ``raw`` against the contract its topic carries."""
    return decode(raw, CONTRACTS[expected_contract], expected_contract, KNOWN_CONTRACTS, max_bytes)


def decode_command(raw: bytes, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> WorkOrderCommand | Rejection:
    return decode(raw, WorkOrderCommand, COMMAND_CONTRACT, KNOWN_CONTRACTS, max_bytes)


COMMAND_CONTRACT = "workorder-command/1"
KNOWN_CONTRACTS = frozenset({*CONTRACTS, COMMAND_CONTRACT})
Message = TypeVar("Message", bound=BaseModel)


def decode(
    raw: bytes, model: type[Message], contract: str, known: frozenset[str], max_bytes: int
) -> Message | Rejection:
    """Parse once (refusing duplicate keys: which value would count is ambiguous), check the
    contract, then validate the fields. jiter parses: ~4x faster than the standard library
    with a duplicate-key hook, and it refuses lone surrogates, which no UTF-8 topic can carry."""
    if len(raw) > max_bytes:
        return Rejection(RejectionReason.too_large, f"{len(raw)} bytes, limit {max_bytes}")
    try:
        raw.decode("utf-8")  # jiter would call a bad byte "expected value": say what it is
    except UnicodeDecodeError as exc:
        return Rejection(RejectionReason.not_utf8, f"invalid UTF-8 at byte {exc.start}")
    try:
        document = jiter.from_json(raw, catch_duplicate_keys=True, cache_mode="keys")
    except ValueError as exc:
        return _json_rejection(str(exc))
    if not isinstance(document, dict):
        return Rejection(RejectionReason.not_an_object, f"a JSON {_json_type(document)}")
    claimed = document.get("schema")
    if claimed is None:
        return Rejection(RejectionReason.missing_contract, "no 'schema' field")
    if not isinstance(claimed, str) or claimed not in known:
        return Rejection(
            RejectionReason.unknown_contract,
            f"schema {str(claimed)[:64]!r} is not one of {sorted(known)}",
        )
    if claimed != contract:
        return Rejection(RejectionReason.wrong_topic, f"a {claimed} message on the topic for {contract}")
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        return _field_rejection(exc)
    except RecursionError:
        return Rejection(RejectionReason.invalid_field, "nested too deeply")


_DUPLICATE_KEY = re.compile(r'Detected duplicate key "(.*)" at (line \d+ column \d+)', re.DOTALL)


def _json_rejection(error: str) -> Rejection:
    """jiter's message says what is wrong and where (line, column)."""
    duplicate = _DUPLICATE_KEY.fullmatch(error)
    if duplicate:
        key, where = duplicate.groups()
        return Rejection(
            RejectionReason.duplicate_key, f"key {key[:64]!r} appears more than once in one object ({where})"
        )
    if error.startswith("recursion limit exceeded"):
        return Rejection(RejectionReason.not_json, f"nested too deeply ({error})")
    return Rejection(RejectionReason.not_json, error[:200])


def _json_type(value: object) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), "null"
    )


def implausible_time(
    occurred_at: datetime, now: datetime, max_age: timedelta, max_lead: timedelta
) -> Rejection | None:
    """An event time no publisher could mean: from the future beyond clock skew, or too old."""
    if occurred_at > now + max_lead:
        return Rejection(
            RejectionReason.implausible_time,
            f"event time {occurred_at.isoformat()} is more than {max_lead} ahead of {now.isoformat()}",
        )
    if occurred_at < now - max_age:
        return Rejection(
            RejectionReason.implausible_time,
            f"event time {occurred_at.isoformat()} is more than {max_age.days} days old",
        )
    return None


def _field_rejection(error: ValidationError) -> Rejection:
    # Only locations and messages: input values may hold personal data.
    problems = error.errors(include_input=False, include_url=False)
    detail = "; ".join(
        f"{'.'.join(str(p) for p in problem['loc']) or '(message)'}: {problem['msg']}"
        for problem in problems[:10]
    )
    if any(problem["type"] == "timezone_aware" for problem in problems):
        return Rejection(RejectionReason.missing_offset, detail)
    if any(_is_plate(problem["loc"]) and problem["type"] != "missing" for problem in problems):
        return Rejection(RejectionReason.bad_plate, detail)
    return Rejection(RejectionReason.invalid_field, detail)


def _is_plate(loc: tuple[int | str, ...]) -> bool:
    return "plate" in loc or "vehicles_moving" in loc
