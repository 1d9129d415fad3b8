"""What a dead letter may show of a message that may hold personal data.

A message may be personal when its topic's contract, the contract it claims, or any of its
top-level field names is one with personal fields (``schemas.inbound.PERSONAL_FIELDS``).
Then:

- each personal field keeps its place, but whatever it holds becomes ``***`` (nested
  values too; field names the contract does not declare become ``***1``, ``***2``...);
- every text a personal field held (and each run of 5 or more digits in it) is masked
  wherever else it appears: a summary quoting the phone, a field name, the rejection's
  detail; so is a number written with spaces, dashes or dots between its digits whose
  digits hold a personal run of 7 or more (a phone written another way);
- a message that cannot be read to be masked (not UTF-8, not JSON, too large, more
  personal texts than ``MAX_MASKED_TEXTS``) is withheld whole, and so is the detail of
  its rejection unless that detail never quotes the message.

The rest is kept, so an operator still sees what was wrong.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jiter

from workorder_pipeline.schemas.deadletter import Redaction, RejectionReason
from workorder_pipeline.schemas.inbound import PERSONAL_FIELDS

MASK = "***"
#: A personal text shorter than this is not masked elsewhere (one character names nobody,
#: and masking it would blank a summary).
MIN_MASKED_LENGTH = 2
#: More distinct personal texts than this and the message is withheld: masking them all
#: everywhere would cost a scan of the message per text.
MAX_MASKED_TEXTS = 64
_DIGIT_RUNS = re.compile(r"\d{5,}")
#: Digits with single separators between them (``139-1777-0123``, ``139 1777 0123``).
_SEPARATED_DIGITS = re.compile(r"\d(?:[\s.\-]?\d){6,}")
#: A personal run of digits at least this long is also looked for with separators.
MIN_SEPARATED_DIGITS = 7
#: Reasons whose detail never quotes the message (processors.intake): kept when withheld.
_DETAIL_QUOTES_NOTHING = frozenset(
    {
        RejectionReason.not_utf8,
        RejectionReason.not_json,
        RejectionReason.too_large,
        RejectionReason.empty_message,
        RejectionReason.not_an_object,
    }
)
#: Every personal top-level field of every contract, with the names declared inside it.
_ANY_CONTRACT: dict[str, frozenset[str]] = {
    name: declared for fields in PERSONAL_FIELDS.values() for name, declared in fields.items()
}


@dataclass(frozen=True, slots=True)
class Shown:
    """What the dead-letter topic may carry of a message."""

    redaction: Redaction
    payload: bytes
    detail: str


def redact(
    raw: bytes | None, topic_contract: str | None, reason: RejectionReason, detail: str, max_bytes: int
) -> Shown:
    """The message ``raw`` (rejected for ``reason``, ``detail``) as a dead letter may show it."""
    personal_topic = bool(PERSONAL_FIELDS.get(topic_contract or ""))
    document = _parsed(raw, max_bytes)
    if not isinstance(document, dict):
        if personal_topic and raw:
            return _withheld(reason, detail)
        return Shown(Redaction.none, raw or b"", detail)
    fields = _personal_fields(document, topic_contract)
    if not fields and not personal_topic:
        return Shown(Redaction.none, raw or b"", detail)
    texts = personal_texts([document[name] for name in fields])
    if texts is None:
        return _withheld(reason, detail)
    masked = {
        _masked_text(key, texts): (
            _masked_field(value, fields[key]) if key in fields else _masked_value(value, texts)
        )
        for key, value in document.items()
    }
    payload = json.dumps(masked, ensure_ascii=False, separators=(",", ":")).encode()
    return Shown(Redaction.personal_fields, payload, _masked_text(detail, texts))


def _parsed(raw: bytes | None, max_bytes: int) -> object:
    """The JSON in ``raw`` (duplicate keys: the last counts), or None if it cannot be read."""
    if not raw or len(raw) > max_bytes:
        return None
    try:
        return jiter.from_json(raw, cache_mode="keys")
    except ValueError:
        return None  # not UTF-8, not JSON, or nested past jiter's limit


def _personal_fields(document: Mapping[str, Any], topic_contract: str | None) -> dict[str, frozenset[str]]:
    """The document's personal top-level fields, with the names declared inside each."""
    claimed = document.get("schema")
    fields = {
        **PERSONAL_FIELDS.get(topic_contract or "", {}),
        **(PERSONAL_FIELDS.get(claimed, {}) if isinstance(claimed, str) else {}),
    }
    fields.update((name, declared) for name, declared in _ANY_CONTRACT.items() if name in document)
    return {name: declared for name, declared in fields.items() if name in document}


def masked(text: str, personal: object) -> str:
    """``text`` with every text the personal value ``personal`` holds masked (all of it, when
    that value holds too many texts to look for)."""
    texts = personal_texts([personal])
    return MASK if texts is None else _masked_text(text, texts)


def personal_texts(values: Iterable[object]) -> list[str] | None:
    """Every text personal ``values`` hold (strings, field names, numbers as written, runs of
    5+ digits), longest first; None when there are more than ``MAX_MASKED_TEXTS``."""
    texts: set[str] = set()
    for value in values:
        for text in _texts(value):
            for candidate in (text, *_DIGIT_RUNS.findall(text)):
                if len(candidate) >= MIN_MASKED_LENGTH and candidate != MASK:
                    texts.add(candidate)
            if len(texts) > MAX_MASKED_TEXTS:
                return None
    return sorted(texts, key=lambda text: (-len(text), text))


def _texts(value: object) -> Iterator[str]:
    """Every string, field name and number in ``value`` (iteratively: no depth limit)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            yield from item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, int | float) and not isinstance(item, bool):
            yield repr(item)


def _masked_field(value: object, declared: frozenset[str]) -> object:
    """A personal field: its declared members keep their names, every value is masked."""
    if not isinstance(value, dict):
        return MASK if value is not None else None
    return {
        (key if key in declared else f"{MASK}{index}"): (MASK if item is not None else None)
        for index, (key, item) in enumerate(value.items(), start=1)
    }


def _masked_value(value: object, texts: list[str]) -> object:
    """A field that is not personal, with every personal text in it masked."""
    if isinstance(value, str):
        return _masked_text(value, texts)
    if isinstance(value, dict):
        return {_masked_text(key, texts): _masked_value(item, texts) for key, item in value.items()}
    if isinstance(value, list):
        return [_masked_value(item, texts) for item in value]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return MASK if _masked_text(repr(value), texts) != repr(value) else value
    return value


def _masked_text(text: str, texts: list[str]) -> str:
    # Longest first: a name inside a longer personal text does not split it.
    for personal in texts:
        if personal in text:
            text = text.replace(personal, MASK)
    numbers = [t for t in texts if len(t) >= MIN_SEPARATED_DIGITS and t.isdigit()]
    if not numbers:
        return text

    def masked_number(found: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", found.group())
        return MASK if any(number in digits for number in numbers) else found.group()

    return _SEPARATED_DIGITS.sub(masked_number, text)


def _withheld(reason: RejectionReason, detail: str) -> Shown:
    if reason not in _DETAIL_QUOTES_NOTHING:
        detail = f"{reason.value} (the detail is withheld: it may quote personal data)"
    return Shown(Redaction.withheld, b"", detail)
