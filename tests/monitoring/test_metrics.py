"""The metric families of streams/metrics.py: what each record function counts, label
hygiene, Prometheus naming conventions (``promtool check metrics``)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.monitoring.support import ALLOWED_LABELS, require_binary
from workorder_pipeline.config.settings import Settings
from workorder_pipeline.processors.lifecycle import Refusal
from workorder_pipeline.schemas.commands import (
    Actor,
    CommandAction,
    LifecycleEvent,
    LifecycleEventName,
    Outcome,
    RefusalCode,
    ReturnReason,
    WorkOrderCommand,
)
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.workorder import Priority, Subject, WorkOrder, WorkOrderStatus
from workorder_pipeline.services.commands import CommandOutcome, CommandResult
from workorder_pipeline.services.intake import IntakeResult
from workorder_pipeline.streams import metrics
from workorder_pipeline.streams.supervision import SupervisionCollector

E = LifecycleEventName

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
CREATED = NOW - timedelta(hours=30)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def order(unit: str = "squad-2", kind: SignalKind = SignalKind.vehicle_alarm, **fields: Any) -> WorkOrder:
    defaults: dict[str, Any] = {
        "id": "WO-VA-0000000000000001",
        "kind": kind,
        "status": WorkOrderStatus.accepted,
        "unit": unit,
        "priority": Priority.P2,
        "route_key": "alarm.freight",
        "created_at": CREATED,
        "due_at": CREATED + timedelta(days=3),
        "subject": Subject(plate="苏F12345"),
        "summary": "overspeed level 2",
        "source_ids": ("js-key-vehicles/JSKV-1",),
        "first_seen_at": CREATED - timedelta(minutes=5),
        "last_seen_at": CREATED - timedelta(minutes=5),
    }
    return WorkOrder(**{**defaults, **fields})


def outcome(
    action: CommandAction,
    event: LifecycleEventName,
    after: WorkOrder,
    at: datetime = NOW,
    result: Outcome = Outcome.applied,
    detail: dict[str, Any] | None = None,
    **command: Any,
) -> CommandOutcome:
    cmd = WorkOrderCommand(
        command_id=f"c-{action.value}-{event}",
        work_order_id=after.id,
        action=action,
        actor=Actor(unit=after.unit, officer_ids=["a", "b"]),
        at=at,
        **command,
    )
    lifecycle = LifecycleEvent(
        work_order_id=after.id,
        event=event,
        status=after.status,
        unit=after.unit,
        due_at=after.due_at,
        at=at,
        detail=detail or {},
    )
    refusal = Refusal(RefusalCode.invalid_state, "no") if result is Outcome.rejected else None
    return CommandOutcome(cmd, result, lifecycle, refusal, after)


def test_closing_counts_on_time_and_late_and_observes_time_to_close() -> None:
    alarm = {"kind": "vehicle_alarm", "unit": "squad-2"}
    series = {
        "on_time": ("wo_work_orders_closed_total", {**alarm, "on_time": "true"}),
        "late": ("wo_work_orders_closed_total", {**alarm, "on_time": "false"}),
        "clock": ("wo_work_order_time_to_close_seconds_count", alarm),
        "within_1d": ("wo_work_order_time_to_close_seconds_bucket", {**alarm, "le": str(metrics.DAY)}),
        "within_2d": ("wo_work_order_time_to_close_seconds_bucket", {**alarm, "le": str(2 * metrics.DAY)}),
    }
    before = {key: value(name, **labels) for key, (name, labels) in series.items()}

    closed = order(status=WorkOrderStatus.closed, closed_at=NOW, closed_on_time=True)
    late_one = order(status=WorkOrderStatus.closed, closed_at=NOW, closed_on_time=False)
    result = CommandResult(
        outcomes=[
            outcome(CommandAction.close, E.closed, closed, disposition="unfounded"),
            outcome(CommandAction.close, E.closed, late_one, disposition="unfounded"),
            # Refused and duplicate commands count no closure.
            outcome(CommandAction.close, E.command_rejected, closed, result=Outcome.rejected),
            CommandOutcome(outcome(CommandAction.close, E.closed, closed).command, Outcome.duplicate, None),
        ]
    )
    metrics.record_commands(result)

    added = {key: value(name, **labels) - before[key] for key, (name, labels) in series.items()}
    # 30 hours from creation to closing: above one day, within two.
    assert added == {"on_time": 1, "late": 1, "clock": 2, "within_1d": 0, "within_2d": 2}


def test_time_to_accept_is_observed_on_the_first_acceptance_only() -> None:
    count = ("wo_work_order_time_to_accept_seconds_count", {"kind": "suspect", "unit": "squad-4"})
    total = ("wo_work_order_time_to_accept_seconds_sum", {"kind": "suspect", "unit": "squad-4"})
    before = value(count[0], **count[1]), value(total[0], **total[1])
    first = order("squad-4", SignalKind.suspect, accepted_at=NOW)
    again = order("squad-4", SignalKind.suspect, accepted_at=NOW - timedelta(hours=2))  # accepted before
    metrics.record_commands(
        CommandResult(
            outcomes=[
                outcome(CommandAction.accept, E.accepted, first),
                outcome(CommandAction.accept, E.accepted, again),
            ]
        )
    )
    assert value(count[0], **count[1]) - before[0] == 1
    assert value(total[0], **total[1]) - before[1] == pytest.approx(30 * 3600)


def test_returns_count_for_the_unit_that_returned_and_reopens_count() -> None:
    returned = (
        "wo_work_orders_returned_total",
        {"kind": "checkin_failure", "unit": "squad-3", "reason": "misrouted"},
    )
    reopened = ("wo_work_orders_reopened_total", {"kind": "complaint", "unit": "legal"})
    before = value(returned[0], **returned[1]), value(reopened[0], **reopened[1])
    # After a return the order sits in the command center's queue.
    back = order("command-center", SignalKind.checkin_failure, status=WorkOrderStatus.returned)
    again = order("legal", SignalKind.complaint, status=WorkOrderStatus.in_progress, reopen_count=1)
    metrics.record_commands(
        CommandResult(
            outcomes=[
                outcome(
                    CommandAction.return_,
                    E.returned,
                    back,
                    reason=ReturnReason.misrouted,
                    detail={"returned_by": "squad-3", "reason": "misrouted"},
                ),
                outcome(CommandAction.close, E.reopened, again),
            ]
        )
    )
    assert value(returned[0], **returned[1]) - before[0] == 1
    assert value(reopened[0], **reopened[1]) - before[1] == 1
    assert (
        value(
            "wo_work_orders_returned_total", kind="checkin_failure", unit="command-center", reason="misrouted"
        )
        == 0
    )


def test_intake_records_latency_to_dispatch_and_each_platforms_newest_event() -> None:
    latency = ("wo_pipeline_latency_seconds_bucket", {"kind": "complaint", "le": "60.0"})
    count = ("wo_pipeline_latency_seconds_count", {"kind": "complaint"})
    before = value(latency[0], **latency[1]), value(count[0], **count[1])
    dispatched = order(
        "squad-1", SignalKind.complaint, first_seen_at=NOW - timedelta(seconds=40), last_seen_at=NOW
    )
    metrics.record_intake(
        IntakeResult(
            to_dispatch=[dispatched],
            created=[dispatched],
            platforms={
                "mon-test-platform": NOW - timedelta(minutes=2),
                "mon-ahead": NOW + timedelta(hours=1),
            },
        ),
        NOW,
    )
    assert value(latency[0], **latency[1]) - before[0] == 1
    assert value(count[0], **count[1]) - before[1] == 1
    newest = value("wo_platform_last_event_timestamp_seconds", platform="mon-test-platform")
    assert newest == (NOW - timedelta(minutes=2)).timestamp()
    # A publisher's clock running ahead does not make it look alive in the future.
    assert value("wo_platform_last_event_timestamp_seconds", platform="mon-ahead") == NOW.timestamp()
    # An older event (a late re-delivery) does not move the time back.
    metrics.record_intake(IntakeResult(platforms={"mon-test-platform": NOW - timedelta(hours=5)}), NOW)
    assert value("wo_platform_last_event_timestamp_seconds", platform="mon-test-platform") == newest


@pytest.fixture
def fresh_platforms(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    labels: set[str] = set()
    monkeypatch.setattr(metrics, "_platform_labels", labels)
    monkeypatch.setattr(metrics, "PLATFORM_LABEL_LIMIT", 3)
    yield labels


@pytest.mark.parametrize(
    "platform", ["苏F12345", "js key vehicles", "", "a" * 65, "-leading-dash", "13962718304 顾晓明"]
)
def test_a_platform_id_that_is_not_a_plain_id_is_exported_as_other(
    platform: str, fresh_platforms: set[str]
) -> None:
    assert metrics.platform_label(platform) == metrics.OTHER_PLATFORM
    assert fresh_platforms == set()


def test_platform_labels_are_bounded(fresh_platforms: set[str]) -> None:
    assert [metrics.platform_label(p) for p in ("p1", "p2", "p1", "p3", "p4", "p2")] == [
        "p1",
        "p2",
        "p1",
        "p3",
        metrics.OTHER_PLATFORM,
        "p2",
    ]
    assert fresh_platforms == {"p1", "p2", "p3"}


def test_initialise_creates_every_unit_and_kind_at_zero() -> None:
    metrics.initialise(["mon-unit"])
    for kind in SignalKind:
        assert (
            REGISTRY.get_sample_value("wo_work_orders_created_total", {"kind": kind, "unit": "mon-unit"}) == 0
        )
        for on_time in ("true", "false"):
            labels = {"kind": kind, "unit": "mon-unit", "on_time": on_time}
            assert REGISTRY.get_sample_value("wo_work_orders_closed_total", labels) == 0
        labels = {"kind": kind, "unit": "mon-unit", "le": "+Inf"}
        assert REGISTRY.get_sample_value("wo_work_order_time_to_close_seconds_bucket", labels) == 0


def exposition() -> str:
    """Our registry plus the database gauges as a leader exports them."""
    metrics.initialise(["squad-1"])
    supervision = CollectorRegistry()

    class Stats:
        def open_order_stats(self, now: datetime) -> list[dict[str, Any]]:
            return [
                {
                    "unit": "squad-1",
                    "kind": "complaint",
                    "priority": "P2",
                    "open": 2,
                    "overdue": 1,
                    "oldest_created_at": now - timedelta(hours=3),
                }
            ]

    supervision.register(SupervisionCollector(Stats(), ["squad-1"], lambda: True))
    return generate_latest(REGISTRY).decode() + generate_latest(supervision).decode()


def test_our_families_follow_prometheus_conventions() -> None:
    families = [f for f in text_string_to_metric_families(exposition()) if f.name.startswith("wo_")]
    assert len(families) >= 25
    for family in families:
        assert family.documentation.strip(), family.name
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
        if "timestamp" in family.name:
            assert family.name.endswith("_timestamp_seconds"), family.name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} <= ALLOWED_LABELS, (sample.name, sample.labels)


def test_exposition_passes_promtool_check_metrics() -> None:
    promtool = require_binary("promtool")
    done = subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition().encode(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), (
        done.stdout + done.stderr
    ).decode()


def quantile_read(buckets: tuple[float, ...], value: float, q: float = 0.5) -> float:
    """What histogram_quantile answers for observations all equal to ``value`` (Prometheus'
    linear interpolation inside the bucket; the last finite bound beyond it)."""
    for lower, upper in zip((0.0, *buckets), buckets, strict=False):
        if value <= upper:
            return lower + (upper - lower) * q
    return buckets[-1]


@pytest.mark.parametrize(
    "seconds",
    [
        20,
        66,
        100,
        150,
        4 * 60,
        6 * 60,
        40 * 60,
        5 * 3600,
        20 * 3600,
        1.2 * 86400,
        6 * 86400,
        40 * 86400,
        80 * 86400,
    ],
)
def test_time_to_accept_and_close_read_within_a_quarter_of_the_truth(seconds: float) -> None:
    read = quantile_read(metrics.ORDER_CLOCK_BUCKETS, seconds)
    assert abs(read - seconds) <= 0.25 * seconds, f"{seconds} s reads as {read} s"


def test_an_accept_in_66_seconds_no_longer_reads_as_180() -> None:
    assert 60 < quantile_read(metrics.ORDER_CLOCK_BUCKETS, 66) <= 75


@pytest.mark.parametrize("seconds", [0.3, 3, 66, 200, 700, 5 * 3600, 2.5 * 86400, 5 * 86400, 45 * 86400])
def test_pipeline_latency_is_not_capped_below_the_oldest_event_taken_in(seconds: float) -> None:
    buckets = metrics.LATENCY_BUCKETS
    assert buckets[-1] >= Settings().max_event_age_days * metrics.DAY
    read = quantile_read(buckets, seconds)
    assert seconds / 3 <= read <= 3 * seconds, f"{seconds} s reads as {read} s"
    if seconds <= metrics.HOUR:
        assert abs(read - seconds) <= 0.5 * seconds, f"{seconds} s reads as {read} s"


def test_buckets_rise() -> None:
    for buckets in (metrics.ORDER_CLOCK_BUCKETS, metrics.LATENCY_BUCKETS):
        assert list(buckets) == sorted(set(buckets))
