"""A signal: any inbound event, normalized to the fields triage and routing look at."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

#: Values a route matcher can compare against.
FieldValue = str | int | float | bool | None


class SignalKind(StrEnum):
    vehicle_alarm = "vehicle_alarm"
    suspect = "suspect"
    checkin_failure = "checkin_failure"
    complaint = "complaint"


@dataclass(frozen=True, slots=True)
class SourceKey:
    """A signal's identity across publishers: its kind and the publisher's id for it (unique
    within the kind). Stored as ``kind:source_id`` (the ``source_key`` columns)."""

    kind: SignalKind
    source_id: str

    @classmethod
    def of(cls, signal: Signal) -> SourceKey:
        return cls(signal.kind, signal.source_id)

    @classmethod
    def parse(cls, stored: str) -> SourceKey:
        """The key of a stored ``kind:source_id`` (a source id may contain colons itself)."""
        kind, _, source_id = stored.partition(":")
        return cls(SignalKind(kind), source_id)

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.source_id}"


class Signal(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: SignalKind
    #: The publisher's id for this signal, unique within its kind (e.g. ``platform/alarm_id``).
    source_id: str
    occurred_at: datetime
    plate: str | None = None
    enterprise_id: str | None = None
    enterprise_name: str | None = None
    region_code: str | None = None
    place: str | None = None
    #: Kind-specific fields routing may match on (vehicle_class, alarm_type, level, ...).
    attributes: dict[str, FieldValue] = {}
    summary: str
    #: The upstream deadline a complaint ticket carries; our deadline never exceeds it.
    upstream_due_at: datetime | None = None
    urgent: bool = False

    def route_fields(self) -> dict[str, FieldValue]:
        """The flat view route matchers see: kind, region, subject presence and attributes."""
        return {
            "kind": self.kind.value,
            "region": self.region_code,
            "has_plate": self.plate is not None,
            "has_enterprise": self.enterprise_id is not None,
            "urgent": self.urgent,
            **self.attributes,
        }
