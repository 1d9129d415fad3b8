"""Turn a message's bytes into an inbound event, or into a rejection that says why.

Decoding is strict and bounded, the same for every consumer (inbound topics, commands,
the HTTP API):

- a tombstone or an empty value is ``empty_message``;
- the JSON is parsed once by jiter (duplicate keys refused), then the whole document,
  unknown fields and their keys included, is checked before any model sees it: U+0000
  anywhere is ``invalid_character`` (PostgreSQL cannot store it), an integer outside
  signed 64 bits or a non-finite number is ``invalid_field`` (no JSON column can store
  it), nesting deeper than ``MAX_DEPTH`` or an object with more than
  ``MAX_OBJECT_FIELDS`` members is ``too_complex``;
- the contract is validated in pydantic's strict JSON mode: no silent conversion between
  booleans, numbers and strings (``"level": "3"``, ``"urgent": "yes"`` are refused);
  ISO 8601 times and dates, and enum values, still parse from their strings.

What passes is stored as validated: every value the checks let through fits a JSON column
on both databases.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

import jiter
from pydantic import BaseModel, ValidationError

from workorder_pipeline.schemas.commands import WorkOrderCommand
from workorder_pipeline.schemas.deadletter import RejectionReason
from workorder_pipeline.schemas.inbound import CONTRACTS, InboundEvent
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.times import for_people

DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
#: Deepest nesting of objects and arrays a message may have (the message itself is depth
#: 1). Our contracts nest 3 deep (a suspect's checkpoints); 16 leaves room for publishers'
#: unknown fields and bounds the work any one message can cause.
MAX_DEPTH = 16
#: Most members any one object may have. Our contracts' objects have at most 20 fields;
#: 1,000 bounds what unknown fields can add to every stored copy of a signal.
MAX_OBJECT_FIELDS = 1_000
#: Integers a JSON column can hold on both databases (orjson and PostgreSQL's jsonb
#: number are fine with more, but SQLite's and orjson's encoders stop at signed 64 bits).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectionReason
    detail: str


def decode_event(
    raw: bytes | None, expected_contract: str, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> InboundEvent | Rejection:
    """Validate ``raw`` against the contract its topic carries."""
    return decode(raw, CONTRACTS[expected_contract], expected_contract, KNOWN_CONTRACTS, max_bytes)


def decode_command(
    raw: bytes | None, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> WorkOrderCommand | Rejection:
    return decode(raw, WorkOrderCommand, COMMAND_CONTRACT, KNOWN_CONTRACTS, max_bytes)


COMMAND_CONTRACT = "workorder-command/1"
KNOWN_CONTRACTS = frozenset({*CONTRACTS, COMMAND_CONTRACT})
Message = TypeVar("Message", bound=BaseModel)


def decode(
    raw: bytes | None, model: type[Message], contract: str, known: frozenset[str], max_bytes: int
) -> Message | Rejection:
    """Parse and bound the document, check the contract it claims, then validate it strictly."""
    document = parse(raw, max_bytes)
    if isinstance(document, Rejection):
        return document
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
    return validate(raw, model)


def decode_body(
    raw: bytes | None, model: type[Message], max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> Message | Rejection:
    """A JSON body that names no contract (the HTTP API's), under the same rules as a message."""
    document = parse(raw, max_bytes)
    return document if isinstance(document, Rejection) else validate(raw, model)


def parse(raw: bytes | None, max_bytes: int) -> dict[str, Any] | Rejection:
    """The JSON object in ``raw``, every value of it checked by ``unstorable``. Duplicate
    keys are refused (which value would count is ambiguous). jiter parses: ~4x faster than
    the standard library with a duplicate-key hook, and it refuses lone surrogates, which no
    UTF-8 topic can carry."""
    if not raw:
        return Rejection(
            RejectionReason.empty_message, "a tombstone (no value)" if raw is None else "no bytes"
        )
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
    out_of_bounds = unstorable(document)
    return document if out_of_bounds is None else out_of_bounds


def validate(raw: bytes | None, model: type[Message]) -> Message | Rejection:
    """``raw`` (already parsed and bounded) as ``model``, in pydantic's strict JSON mode:
    times, dates and enums parse from their strings as before, but no number or boolean is
    read from a string, nor the other way round."""
    try:
        return model.model_validate_json(raw or b"", strict=True)
    except ValidationError as exc:
        return _field_rejection(exc)
    except RecursionError:
        return Rejection(RejectionReason.too_complex, "nested too deeply")


def unstorable(document: object) -> Rejection | None:
    """The first value (unknown fields and keys included) no JSON column can keep as it
    came, or a shape beyond the bounds; None when the whole document is fine.

    A message that passes (nearly all) is checked by ``_storable`` alone; the walk that
    says where the problem is runs only for one that does not."""
    return None if _storable(document) else _first_unstorable(document)


def _storable(document: object) -> bool:
    """Whether ``unstorable`` finds nothing, without locating anything: one stack entry per
    object or array instead of per value, the keys of an object checked in one search.
    Was 38 of the intake's ~260 µs of CPU per alarm (PostgreSQL, batches of 500)."""
    stack: list[tuple[object, int]] = [(document, 1)]
    while stack:
        container, depth = stack.pop()
        if depth > MAX_DEPTH:
            return False
        if type(container) is dict:
            if len(container) > MAX_OBJECT_FIELDS or "\x00" in "".join(container):
                return False
            values: Iterable[object] = container.values()
        elif type(container) is list:
            values = container
        else:  # a scalar document (parse refuses one; callers may not)
            values = (container,)
        for value in values:
            kind = type(value)
            if kind is str:
                if "\x00" in value:  # type: ignore[operator]
                    return False
            elif kind is int:
                if not INT64_MIN <= value <= INT64_MAX:  # type: ignore[operator]
                    return False
            elif kind is float:
                if not math.isfinite(value):  # type: ignore[arg-type]
                    return False
            elif kind is dict or kind is list:
                stack.append((value, depth + 1))
            elif not (kind is bool or value is None):
                return False  # anything else: let the full walk judge it
    return True


def _first_unstorable(document: object) -> Rejection | None:
    """``unstorable``'s walk. Iterative (a hostile message cannot exhaust the stack); each
    entry keeps its parent's entry, so a location is spelled out only for the rejection."""
    stack: list[tuple[object, int, _Where | None]] = [(document, 1, None)]
    while stack:
        value, depth, where = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return Rejection(RejectionReason.invalid_character, f"U+0000 in {_spell(where)}")
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                return Rejection(
                    RejectionReason.invalid_field, f"{_spell(where)}: integer outside the signed 64-bit range"
                )
        elif isinstance(value, float):
            if not math.isfinite(value):
                return Rejection(RejectionReason.invalid_field, f"{_spell(where)}: not a finite number")
        elif depth > MAX_DEPTH:
            return Rejection(RejectionReason.too_complex, f"{_spell(where)}: nested deeper than {MAX_DEPTH}")
        elif isinstance(value, dict):
            if len(value) > MAX_OBJECT_FIELDS:
                return Rejection(
                    RejectionReason.too_complex,
                    f"{_spell(where)}: {len(value)} fields, limit {MAX_OBJECT_FIELDS}",
                )
            for key, item in value.items():
                if "\x00" in key:
                    return Rejection(
                        RejectionReason.invalid_character, f"U+0000 in a field name of {_spell(where)}"
                    )
                stack.append((item, depth + 1, (where, key)))
        elif isinstance(value, list):
            stack.extend((item, depth + 1, (where, index)) for index, item in enumerate(value))
    return None


#: Where a value sits: its parent's location and its key or index (None: the message).
_Where = tuple["_Where | None", str | int]


def _spell(where: _Where | None) -> str:
    parts: list[str] = []
    while where is not None:
        where, step = where
        parts.append(f"[{step}]" if isinstance(step, int) else "." + (step[:40] or '""'))
    return "".join(reversed(parts)).lstrip(".") or "the message"


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
        return Rejection(RejectionReason.too_complex, f"nested too deeply ({error})")
    return Rejection(RejectionReason.not_json, error[:200])


def _json_type(value: object) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), "null"
    )


class EventTime(StrEnum):
    """How an event's time stands against its receipt (a closed set: a metric label)."""

    on_time = "on_time"
    #: Older than the age limit, but a complaint: every ticket is answered, so it makes an
    #: order all the same, marked as received late.
    late = "late"
    #: Older than the age limit and not a complaint: recorded as a suppression, no order.
    stale = "stale"


def event_time(
    kind: SignalKind, occurred_at: datetime, now: datetime, max_age: timedelta, max_lead: timedelta
) -> Rejection | tuple[EventTime, str]:
    """Judge an event's time at its receipt ``now``: beyond ``max_lead`` in the future no
    publisher means it (a clock error: a rejection); older than ``max_age`` the event is real
    but too old to act on, except a complaint (see ``EventTime``). With the reason why."""
    if occurred_at > now + max_lead:
        return Rejection(
            RejectionReason.implausible_time,
            f"event time {for_people(occurred_at)} is more than {max_lead} ahead of {for_people(now)}",
        )
    if occurred_at >= now - max_age:
        return EventTime.on_time, ""
    age = f"event time {for_people(occurred_at)} is more than {_days(max_age)} days before its receipt"
    if kind is SignalKind.complaint:
        return EventTime.late, f"{age}: received late, answered all the same"
    return EventTime.stale, f"{age}: too old to act on (WO_MAX_EVENT_AGE_DAYS)"


def _days(span: timedelta) -> str:
    return f"{span / timedelta(days=1):g}"


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
