"""The publishing platforms we expect to hear from, and how often (``policy/platforms.yaml``).

A platform is who published a signal (services.intake.publishing_platform): a vehicle
alarm's monitoring platform (its ``platform_id``), ``rectification`` (the daily suspect
list), ``checkin`` (the check-in desk) or ``complaint-<channel>`` (the hotlines). Whether
one is silent at a moment is decided by processors/platform_silence.py.
"""

from __future__ import annotations

import re
from datetime import time
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

#: What a platform id may be, in the database and as a metric label: a plain id (a plate,
#: a name or free text never is one).
PLATFORM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PlatformId = Annotated[str, StringConstraints(pattern=PLATFORM_ID.pattern)]

#: At most a week: a longer silence is no longer supervision.
MAX_SILENCE_MINUTES = 7 * 24 * 60


def is_platform_id(value: str) -> bool:
    return PLATFORM_ID.match(value) is not None


class Cadence(StrEnum):
    #: Around the clock (vehicle alarms): silent after ``silent_after_minutes``.
    continuous = "continuous"
    #: One delivery a day (the suspect list), due ``by`` a time of day (China time).
    daily = "daily"
    #: Between ``opens`` and ``closes`` (China time; hotlines): silent after
    #: ``silent_after_minutes`` of those hours without a signal; nights do not count.
    working_hours = "working_hours"


class Days(StrEnum):
    every = "every"
    #: Working days of the official calendar (policy/calendar.yaml, chinese-calendar).
    working = "working"


class ExpectedPlatform(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: PlatformId
    name: str = Field(min_length=1)
    cadence: Cadence
    silent_after_minutes: int | None = Field(default=None, ge=1, le=MAX_SILENCE_MINUTES)
    #: daily: the day's delivery is due by this time.
    by: time | None = None
    #: working_hours: the hours during which the platform sends.
    opens: time | None = None
    closes: time | None = None
    days: Days = Days.every

    @field_validator("by", "opens", "closes", mode="before")
    @classmethod
    def _quoted_time(cls, value: Any) -> Any:
        # Unquoted 17:30 is the integer 1050 to YAML 1.1 (base 60): never guess.
        if value is not None and not isinstance(value, str | time):
            raise ValueError('a time of day in quotes, e.g. "17:30"')
        return value

    @model_validator(mode="after")
    def _fields_of_cadence(self) -> Self:
        wanted = {
            Cadence.continuous: {"silent_after_minutes"},
            Cadence.daily: {"by"},
            Cadence.working_hours: {"silent_after_minutes", "opens", "closes"},
        }[self.cadence]
        optional = ("silent_after_minutes", "by", "opens", "closes")
        given = {name for name in optional if getattr(self, name) is not None}
        if wanted - given:
            raise ValueError(f"cadence {self.cadence.value} needs {', '.join(sorted(wanted - given))}")
        if given - wanted:
            raise ValueError(f"cadence {self.cadence.value} takes no {', '.join(sorted(given - wanted))}")
        if self.opens is not None and self.closes is not None and self.opens >= self.closes:
            raise ValueError("opens must be before closes (within one day)")
        return self


class PlatformRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    platforms: list[ExpectedPlatform] = []

    @model_validator(mode="after")
    def _ids_unique(self) -> Self:
        ids = [platform.id for platform in self.platforms]
        duplicated = sorted({i for i in ids if ids.count(i) > 1})
        if duplicated:
            raise ValueError(f"platform ids must be unique; repeated: {', '.join(duplicated)}")
        return self
