"""The four inbound contracts (``../shared/contracts.md``, version 1).

Unknown extra fields are tolerated and kept (``extra="allow"``): they travel with the
signal into storage. Plates are normalized, times carry an offset and become UTC.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from workorder_pipeline.schemas.plates import Plate
from workorder_pipeline.schemas.times import UtcDatetime

Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, max_length=256)]


def _fold_digits(value: object) -> object:
    """Full-width digits (３２０６８２) become ASCII, as plates are folded (NFKC); any
    other script's digits stay and fail the ASCII pattern: one code, one spelling."""
    return unicodedata.normalize("NFKC", value) if isinstance(value, str) else value


#: An administrative region code (行政区划代码): six ASCII digits. A regular expression's
#: ``\d`` matches every script's digits, so the class is spelled out.
RegionCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$"), BeforeValidator(_fold_digits)]
# Unified social credit code: 18 characters; upper-cased before the check.
EnterpriseId = Annotated[
    str, StringConstraints(strip_whitespace=True, to_upper=True, pattern=r"^[0-9A-Z]{18}$")
]


class WireModel(BaseModel):
    """Base of every inbound message and part of one: extra fields kept, values final."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True, allow_inf_nan=False)


class Enterprise(WireModel):
    id: EnterpriseId
    name: Name | None = None


class Location(WireModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    region_code: RegionCode
    road: Name | None = None


class PlateColor(StrEnum):
    yellow = "yellow"
    blue = "blue"
    green = "green"
    yellow_green = "yellow_green"
    white = "white"
    black = "black"


class VehicleClass(StrEnum):
    coach = "coach"
    charter_bus = "charter_bus"
    tourist_bus = "tourist_bus"
    bus = "bus"
    taxi = "taxi"
    ride_hailing = "ride_hailing"
    dangerous_goods = "dangerous_goods"
    heavy_truck = "heavy_truck"
    other = "other"


class AlarmType(StrEnum):
    overspeed = "overspeed"
    fatigue_driving = "fatigue_driving"
    night_driving_ban = "night_driving_ban"
    offline = "offline"
    route_deviation = "route_deviation"
    adas_forward_collision = "adas_forward_collision"
    adas_lane_departure = "adas_lane_departure"
    dsm_phone = "dsm_phone"
    dsm_smoking = "dsm_smoking"
    dsm_distraction = "dsm_distraction"
    camera_blocked = "camera_blocked"
    device_fault = "device_fault"


class VehicleAlarm(WireModel):
    contract: Literal["vehicle-alarm/1"] = Field(alias="schema")
    alarm_id: Id
    platform_id: Id
    plate: Plate
    plate_color: PlateColor
    vehicle_class: VehicleClass
    enterprise: Enterprise | None = None
    alarm_type: AlarmType
    level: int = Field(ge=1, le=3)
    occurred_at: UtcDatetime
    location: Location
    speed_kmh: float | None = Field(default=None, ge=0, le=1000)
    speed_limit_kmh: float | None = Field(default=None, gt=0, le=1000)
    duration_s: float | None = Field(default=None, ge=0, le=7 * 24 * 3600)
    evidence: list[Annotated[str, StringConstraints(max_length=2048)]] | None = None


class SuspectType(StrEnum):
    high_frequency_illegal_operation = "high_frequency_illegal_operation"
    illegal_ride_hailing = "illegal_ride_hailing"
    unfiled_charter = "unfiled_charter"
    beyond_scope = "beyond_scope"
    dangerous_goods_off_base = "dangerous_goods_off_base"


class Checkpoint(WireModel):
    id: Id
    region_code: RegionCode
    passes: int = Field(ge=0, le=1_000_000)


class Suspect(WireModel):
    contract: Literal["suspect/1"] = Field(alias="schema")
    entry_id: Id
    list_date: date
    plate: Plate
    suspect_type: SuspectType
    window_days: int = Field(ge=1, le=366)
    pass_count: int = Field(ge=0, le=10_000_000)
    checkpoints: list[Checkpoint] = Field(max_length=10_000)
    score: float | None = Field(default=None, ge=0, le=1)


class CheckinOutcome(StrEnum):
    no_response = "no_response"
    late_response = "late_response"


class CheckinFailure(WireModel):
    contract: Literal["checkin-failure/1"] = Field(alias="schema")
    check_id: Id
    platform_id: Id
    enterprise: Enterprise
    issued_at: UtcDatetime
    answer_window_s: int = Field(ge=0, le=7 * 24 * 3600)
    outcome: CheckinOutcome
    responded_at: UtcDatetime | None = None
    vehicles_moving: list[Plate] = Field(default_factory=list, max_length=100_000)


class Channel(StrEnum):
    hotline_12328 = "12328"
    hotline_12345 = "12345"
    hotline_12395 = "12395"
    web = "web"
    letter = "letter"


class ComplaintCategory(StrEnum):
    refusal = "refusal"
    detour = "detour"
    overcharging = "overcharging"
    illegal_operation = "illegal_operation"
    service_attitude = "service_attitude"
    driving_school = "driving_school"
    vehicle_repair = "vehicle_repair"
    waterway = "waterway"
    enforcement_conduct = "enforcement_conduct"
    other = "other"


class ComplaintSubject(WireModel):
    plate: Plate | None = None
    enterprise_id: EnterpriseId | None = None
    enterprise_name: Name | None = None
    place: Name | None = None
    region_code: RegionCode | None = None
    enforcement_unit: Id | None = None


class Complainant(WireModel):
    """Personal data: kept for the callback, never shown in logs, metrics or reprs."""

    name: Name | None = None
    phone: Annotated[str, StringConstraints(max_length=64)] | None = None

    def __repr_args__(self) -> Any:
        return [(key, "***" if value else value) for key, value in super().__repr_args__()]


class Complaint(WireModel):
    contract: Literal["complaint/1"] = Field(alias="schema")
    ticket_id: Id
    channel: Channel
    received_at: UtcDatetime
    due_at: UtcDatetime
    category: ComplaintCategory
    subject: ComplaintSubject
    summary: Annotated[str, StringConstraints(max_length=20_000)]
    complainant: Complainant = Field(
        default=Complainant(),
        description="Personal data: never on a topic in clear (a dead letter shows it masked)",
    )
    urgent: bool = False


InboundEvent = VehicleAlarm | Suspect | CheckinFailure | Complaint

#: Contract name (the ``schema`` field) -> its model.
CONTRACTS: dict[str, type[InboundEvent]] = {
    "vehicle-alarm/1": VehicleAlarm,
    "suspect/1": Suspect,
    "checkin-failure/1": CheckinFailure,
    "complaint/1": Complaint,
}

#: Contract name -> its top-level fields that hold personal data -> the field names the
#: contract declares inside each. Whatever such a field holds never reaches a topic in clear
#: (processors.redaction masks it in dead letters).
PERSONAL_FIELDS: dict[str, dict[str, frozenset[str]]] = {
    "complaint/1": {"complainant": frozenset(Complainant.model_fields)},
}
