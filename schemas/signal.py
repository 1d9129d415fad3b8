"""A signal: any inbound event, normalized to the fields triage and routing look at."""

from __future__ import annotations

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
