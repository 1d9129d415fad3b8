"""Turn a message's bytes into an inbound event, or into a rejection that says why.

The fast path is one pydantic call against the topic's contract; the slower diagnosis
runs only for messages that fail it, to give the dead letter a precise reason.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TypeVar

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
    if len(raw) > max_bytes:
        return Rejection(RejectionReason.too_large, f"{len(raw)} bytes, limit {max_bytes}")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        return _diagnose(raw, contract, known, exc)


def _diagnose(raw: bytes, expected_contract: str, known: frozenset[str], error: ValidationError) -> Rejection:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(RejectionReason.not_utf8, f"invalid UTF-8 at byte {exc.start}")
    try:
        document = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        detail = str(exc) if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        return Rejection(RejectionReason.not_json, detail)
    if not isinstance(document, dict):
        return Rejection(RejectionReason.not_an_object, f"a JSON {type(document).__name__}")
    contract = document.get("schema")
    if contract is None:
        return Rejection(RejectionReason.missing_contract, "no 'schema' field")
    if not isinstance(contract, str) or contract not in known:
        return Rejection(
            RejectionReason.unknown_contract,
            f"schema {str(contract)[:64]!r} is not one of {sorted(known)}",
        )
    if contract != expected_contract:
        return Rejection(
            RejectionReason.wrong_topic,
            f"a {contract} message on the topic for {expected_contract}",
        )
    return _field_rejection(error)


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
