"""Times on the wire must carry an offset; inside the pipeline they are UTC."""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, TypeAdapter, ValidationError

_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


#: pydantic's own lenient reading of ISO 8601 text, as every time was read before messages
#: were validated in strict mode (where a validator's output must already be a datetime).
_ISO_8601 = TypeAdapter(datetime)


def _iso_text(value: Any) -> Any:
    """ISO 8601 text (or a datetime), never a number: pydantic would read ``0`` or ``"1.5e9"``
    as seconds since 1970, which no contract allows and no publisher means."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("a date-time in ISO 8601 with an offset is expected, not a number")
    if isinstance(value, str):
        try:
            return _ISO_8601.validate_python(value)
        except ValidationError as exc:
            raise ValueError(exc.errors(include_input=False)[0]["msg"]) from None
    return value


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+08:00 has no UTC equivalent
        raise ValueError("time out of range once converted to UTC") from None


#: The time of every person who reads what the pipeline says (officers, supervisors).
CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")


def for_people(moment: datetime) -> str:
    """China Standard Time with its offset, to the second: ``2026-12-05 00:00:00+08:00``.
    A moment China time cannot write (past year 9999 there) keeps its own offset."""
    with contextlib.suppress(OverflowError):
        moment = moment.astimezone(CHINA_STANDARD_TIME)
    return moment.replace(microsecond=0).isoformat(sep=" ")


#: A timestamp that arrived with an offset (``+08:00`` or ``Z``), kept in UTC.
UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_iso_text), AfterValidator(_to_utc)]
