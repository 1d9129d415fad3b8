"""Each inbound contract, normalized to a ``Signal``: the one shape triage and routing read."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, time
from functools import singledispatch
from types import MappingProxyType

from workorder_pipeline.processors.redaction import masked
from workorder_pipeline.schemas.inbound import CheckinFailure, Complaint, InboundEvent, Suspect, VehicleAlarm
from workorder_pipeline.schemas.signal import Signal, SignalKind
from workorder_pipeline.schemas.times import CHINA_STANDARD_TIME

NO_REGIONS: Mapping[str, str] = MappingProxyType({})


@singledispatch
def to_signal(event: InboundEvent, checkpoint_regions: Mapping[str, str] = NO_REGIONS) -> Signal:
    """The signal an event carries. ``checkpoint_regions`` (reference data) overrides the
    region a suspect list gives a checkpoint."""
    raise TypeError(f"no signal for {type(event).__name__}")


@to_signal.register
def _(alarm: VehicleAlarm, checkpoint_regions: Mapping[str, str] = NO_REGIONS) -> Signal:
    summary = f"{alarm.alarm_type.value} level {alarm.level}"
    if alarm.speed_kmh is not None and alarm.speed_limit_kmh:
        summary += f", {alarm.speed_kmh:g} km/h in a {alarm.speed_limit_kmh:g} km/h limit"
    if alarm.duration_s is not None:
        summary += f", {alarm.duration_s:g} s"
    if alarm.location.road:
        summary += f", on {alarm.location.road}"
    return Signal(
        kind=SignalKind.vehicle_alarm,
        source_id=f"{alarm.platform_id}/{alarm.alarm_id}",
        occurred_at=alarm.occurred_at,
        plate=alarm.plate,
        enterprise_id=alarm.enterprise.id if alarm.enterprise else None,
        enterprise_name=alarm.enterprise.name if alarm.enterprise else None,
        region_code=alarm.location.region_code,
        place=alarm.location.road,
        attributes={
            "vehicle_class": alarm.vehicle_class.value,
            "alarm_type": alarm.alarm_type.value,
            "level": alarm.level,
            "platform_id": alarm.platform_id,
            "plate_color": alarm.plate_color.value,
            "speed_kmh": alarm.speed_kmh,
            "speed_limit_kmh": alarm.speed_limit_kmh,
            "overspeed_pct": _overspeed_pct(alarm),
            "duration_s": alarm.duration_s,
        },
        summary=summary,
    )


def _overspeed_pct(alarm: VehicleAlarm) -> float | None:
    if alarm.speed_kmh is None or not alarm.speed_limit_kmh:
        return None
    return round(100.0 * (alarm.speed_kmh - alarm.speed_limit_kmh) / alarm.speed_limit_kmh, 1)


@to_signal.register
def _(suspect: Suspect, checkpoint_regions: Mapping[str, str] = NO_REGIONS) -> Signal:
    return Signal(
        kind=SignalKind.suspect,
        source_id=suspect.entry_id,
        # A daily list has no event time; its date is what is known.
        occurred_at=_start_of_list_day(suspect),
        plate=suspect.plate,
        region_code=busiest_checkpoint_region(suspect, checkpoint_regions),
        attributes={
            "suspect_type": suspect.suspect_type.value,
            "pass_count": suspect.pass_count,
            "window_days": suspect.window_days,
            "score": suspect.score,
        },
        summary=(
            f"{suspect.suspect_type.value}: {suspect.pass_count} passes "
            f"in {suspect.window_days} days (list of {suspect.list_date.isoformat()})"
        ),
    )


def _start_of_list_day(suspect: Suspect) -> datetime:
    # Lists are produced for China Standard Time days.
    return datetime.combine(suspect.list_date, time(0, 0), tzinfo=CHINA_STANDARD_TIME).astimezone(UTC)


def busiest_checkpoint_region(
    suspect: Suspect, checkpoint_regions: Mapping[str, str] = NO_REGIONS
) -> str | None:
    """The region holding the checkpoints the vehicle passed most often.

    Passes are summed per region. Ties go to the region whose single busiest checkpoint
    has more passes, then to the lowest region code, so the choice never depends on the
    order the publisher listed the checkpoints in.
    """
    if not suspect.checkpoints:
        return None
    totals: dict[str, int] = {}
    peaks: dict[str, int] = {}
    for checkpoint in suspect.checkpoints:
        region = checkpoint_regions.get(checkpoint.id, checkpoint.region_code)
        totals[region] = totals.get(region, 0) + checkpoint.passes
        peaks[region] = max(peaks.get(region, 0), checkpoint.passes)
    return min(totals, key=lambda region: (-totals[region], -peaks[region], region))


@to_signal.register
def _(failure: CheckinFailure, checkpoint_regions: Mapping[str, str] = NO_REGIONS) -> Signal:
    gap = (
        f"answered after {(failure.responded_at - failure.issued_at).total_seconds():g} s"
        if failure.responded_at
        else "no answer"
    )
    return Signal(
        kind=SignalKind.checkin_failure,
        source_id=failure.check_id,
        occurred_at=failure.issued_at,
        enterprise_id=failure.enterprise.id,
        enterprise_name=failure.enterprise.name,
        attributes={
            "outcome": failure.outcome.value,
            "platform_id": failure.platform_id,
            "vehicles_moving": len(failure.vehicles_moving),
        },
        summary=(
            f"check-in {failure.outcome.value} ({gap}, window {failure.answer_window_s} s); "
            f"{len(failure.vehicles_moving)} vehicles moving during the gap"
        ),
    )


@to_signal.register
def _(complaint: Complaint, checkpoint_regions: Mapping[str, str] = NO_REGIONS) -> Signal:
    subject = complaint.subject
    return Signal(
        kind=SignalKind.complaint,
        source_id=f"{complaint.channel.value}/{complaint.ticket_id}",
        occurred_at=complaint.received_at,
        plate=subject.plate,
        enterprise_id=subject.enterprise_id,
        enterprise_name=subject.enterprise_name,
        region_code=subject.region_code,
        place=subject.place,
        attributes={
            "category": complaint.category.value,
            "channel": complaint.channel.value,
            "enforcement_unit": subject.enforcement_unit,
        },
        # The complainant's name and phone stay with the complainant (squads read them through
        # the API, which records the read), not in a summary every consumer sees.
        summary=f"{complaint.category.value} complaint via {complaint.channel.value}: "
        + masked(complaint.summary, complaint.complainant.model_dump(mode="json")),
        upstream_due_at=complaint.due_at,
        urgent=complaint.urgent,
    )
