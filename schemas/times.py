"""Times on the wire must carry an offset; inside the pipeline they are UTC."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator

_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _not_a_number(value: Any) -> Any:
    """ISO 8601 text (or a datetime), never a number: pydantic would read ``0`` or ``"1.5e9"``
    as seconds since 1970, which no contract allows and no publisher means."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("a date-time in ISO 8601 with an offset is expected, not a number")
    return value


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+08:00 has no UTC equivalent
        raise ValueError("time out of range once converted to UTC") from None


#: A timestamp that arrived with an offset (``+08:00`` or ``Z``), kept in UTC.
UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_not_a_number), AfterValidator(_to_utc)]
