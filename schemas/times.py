"""Times on the wire must carry an offset; inside the pipeline they are UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+08:00 has no UTC equivalent
        raise ValueError("time out of range once converted to UTC") from None


#: A timestamp that arrived with an offset (``+08:00`` or ``Z``), kept in UTC.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
