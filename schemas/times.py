"""Times on the wire must carry an offset; inside the pipeline they are UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


#: A timestamp that arrived with an offset (``+08:00`` or ``Z``), kept in UTC.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
