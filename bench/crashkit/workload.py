"""The workload: deterministic signals and commands, and what the pipeline must make of
them, computed in-process with the same pure triage the workers run."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from crashkit.config import OFFICERS, POLICY_DIR, CrashConfig
from workorder_pipeline.config.settings import Topics
from workorder_pipeline.processors.compiled_policy import compile_policy
from workorder_pipeline.processors.intake import EventTime, Rejection, decode_event, event_time
from workorder_pipeline.processors.signals import to_signal
from workorder_pipeline.processors.triage import Action, BatchTriageState, ReferenceIndex, triage
from workorder_pipeline.processors.workorders import work_order_id
from workorder_pipeline.schemas.policy import Policy
from workorder_pipeline.schemas.signal import SourceKey
from workorder_pipeline.schemas.workorder import COMMAND_CENTER
from workorder_pipeline.services.policy_files import ReferenceFiles


@dataclass(frozen=True)
class Message:
    topic: str
    key: bytes
    value: bytes


@dataclass
class Expected:
    """What the pipeline must end up with, computed in-process with the pure triage."""

    #: source key -> the order it must be recorded under (None: recorded as suppressed).
    recorded_as: dict[str, str | None] = field(default_factory=dict)
    #: order id -> its unit (actor of its commands).
    orders: dict[str, str] = field(default_factory=dict)
    merged: int = 0
    suppressed: int = 0


@dataclass
class Chunk:
    signals: list[Message]
    #: Commands for orders of an earlier chunk (plus some re-sent), and those orders' ids.
    commands: list[Message] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)


@dataclass
class Workload:
    chunks: list[Chunk]
    expected: Expected
    signal_messages: int
    resends: int
    invalid: int
    command_messages: int
    command_resends: int
    command_ids: set[str]
    by_kind: Counter[str]
    #: Orders reassigned by a command, and to which unit.
    reassigned: dict[str, str] = field(default_factory=dict)


class _Generator:
    """Deterministic (per seed) signals; only their times follow the clock."""

    def __init__(self, seed: int, topics: Topics, now: datetime, signals: int) -> None:
        self.rng = random.Random(seed)
        self.tag = f"CT{seed}"
        self.topics = topics
        # Event times: within the last two hours, increasing (the pipeline dead-letters
        # times from the future and very old ones).
        self.base = now - timedelta(hours=2)
        self.step_s = min(1.0, 5400 / max(1, signals))
        self.now = now
        self.counters: Counter[str] = Counter()
        #: (plate, alarm type, vehicle class) of recent alarms that made an order: repeats reuse them.
        self.alarm_keys: list[tuple[str, str, str]] = []
        self.suspect_keys: list[tuple[str, str]] = []
        self.enterprises: list[str] = []

    def _next(self, what: str) -> int:
        self.counters[what] += 1
        return self.counters[what]

    def _plate(self, office: str) -> str:
        n = self._next(f"plate-{office}")
        if n >= 100_000:
            raise ValueError("at most 99,999 plates per office letter: send fewer signals")
        return f"苏{office}{n:05d}"

    def _iso(self, seconds: float) -> str:
        return (self.base + timedelta(seconds=seconds * self.step_s)).isoformat()

    def message(self) -> tuple[str, Message]:
        """A fresh valid signal: its kind and message."""
        roll = self.rng.random()
        if roll < 0.55:
            return "vehicle_alarm", self.alarm()
        if roll < 0.72:
            return "suspect", self.suspect()
        if roll < 0.82:
            return "checkin_failure", self.checkin()
        return "complaint", self.complaint()

    def alarm(self) -> Message:
        n = self._next("alarm")
        roll = self.rng.random()
        speed: dict[str, float] = {}
        if roll < 0.15 and self.alarm_keys:
            # The same vehicle and alarm type again, a moment later: merged into its order.
            plate, alarm_type, vehicle_class = self.rng.choice(self.alarm_keys[-300:])
            if alarm_type == "overspeed":
                speed = {"speed_kmh": 130.0, "speed_limit_kmh": 100.0}
        elif roll < 0.19:
            # 4 % over the limit: suppressed by the overspeed-under-10pct threshold.
            plate, alarm_type, vehicle_class = self._plate("A"), "overspeed", "coach"
            speed = {"speed_kmh": 104.0, "speed_limit_kmh": 100.0}
        else:
            plate = self._plate("A")
            alarm_type = self.rng.choice(
                ["fatigue_driving", "route_deviation", "adas_forward_collision", "overspeed", "offline"]
            )
            vehicle_class = self.rng.choice(["coach", "taxi", "heavy_truck", "dangerous_goods"])
            if alarm_type == "overspeed":
                speed = {"speed_kmh": 130.0, "speed_limit_kmh": 100.0}
            self.alarm_keys.append((plate, alarm_type, vehicle_class))
        event: dict[str, Any] = {
            "schema": "vehicle-alarm/1",
            "alarm_id": f"{self.tag}-A{n:07d}",
            "platform_id": "js-key-vehicles",
            "plate": plate,
            "plate_color": "yellow",
            "vehicle_class": vehicle_class,
            "alarm_type": alarm_type,
            "level": 2,
            "occurred_at": self._iso(n),
            "location": {"lat": 32.4418, "lon": 120.6307, "region_code": "320682", "road": "G15"},
            "duration_s": 95,
            **speed,
        }
        return Message(self.topics.vehicle_alarms, plate.encode(), _json(event))

    def suspect(self) -> Message:
        n = self._next("suspect")
        roll = self.rng.random()
        passes = 40
        if roll < 0.10 and self.suspect_keys:
            plate, suspect_type = self.rng.choice(self.suspect_keys[-300:])  # merged
        else:
            plate = self._plate("B")
            suspect_type = self.rng.choice(
                ["high_frequency_illegal_operation", "illegal_ride_hailing", "dangerous_goods_off_base"]
            )
            if roll < 0.15:
                passes = 5  # suppressed: suspect-few-passes
            else:
                self.suspect_keys.append((plate, suspect_type))
        event = {
            "schema": "suspect/1",
            "entry_id": f"{self.tag}-S{n:07d}",
            "list_date": (self.now + timedelta(hours=8)).date().isoformat(),  # a China day
            "plate": plate,
            "suspect_type": suspect_type,
            "window_days": 30,
            "pass_count": passes,
            "checkpoints": [{"id": "KK-320682-017", "region_code": "320682", "passes": passes}],
            "score": 0.8,
        }
        return Message(self.topics.suspects, plate.encode(), _json(event))

    def checkin(self) -> Message:
        n = self._next("checkin")
        if self.rng.random() < 0.10 and self.enterprises:
            enterprise = self.rng.choice(self.enterprises[-300:])  # merged
        else:
            enterprise = f"91320682CT{self._next('enterprise'):08d}"
            self.enterprises.append(enterprise)
        event = {
            "schema": "checkin-failure/1",
            "check_id": f"{self.tag}-K{n:07d}",
            "platform_id": "ent-monitor-crash-test",
            "enterprise": {"id": enterprise, "name": "如皋市崩溃测试运输有限公司"},
            "issued_at": self._iso(n),
            "answer_window_s": 600,
            "outcome": "no_response",
            "responded_at": None,
            "vehicles_moving": [],
        }
        return Message(self.topics.checkin_failures, enterprise.encode(), _json(event))

    def complaint(self) -> Message:
        n = self._next("complaint")
        ticket = f"{self.tag}-C{n:07d}"
        category = self.rng.choice(["refusal", "overcharging", "driving_school", "vehicle_repair"])
        event = {
            "schema": "complaint/1",
            "ticket_id": ticket,
            "channel": self.rng.choice(["12328", "12345"]),
            "received_at": self._iso(n),
            "due_at": (self.now + timedelta(days=5)).isoformat(),
            "category": category,
            "subject": {"plate": self._plate("C"), "place": "如皋站出租车候客区", "region_code": "320682"},
            "summary": "崩溃测试投诉：司机拒载，要求核实处理。",
            "complainant": {"name": "测试", "phone": "13900000000"},
            "urgent": self.rng.random() < 0.1,
        }
        return Message(self.topics.complaints, ticket.encode(), _json(event))

    def invalid(self) -> Message:
        n = self._next("invalid")
        if n % 2:
            return Message(self.topics.vehicle_alarms, b"garbage", b"not json {" + str(n).encode())
        event = {"schema": "vehicle-alarm/1", "alarm_id": f"{self.tag}-X{n:07d}", "plate": "not a plate"}
        return Message(self.topics.vehicle_alarms, b"garbage", _json(event))


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()


def build_workload(config: CrashConfig, topics: Topics, policy: Policy, now: datetime) -> Workload:
    """The chunks to publish, and what the pipeline must make of them."""
    generator = _Generator(config.seed, topics, now, config.signals)
    rng = random.Random(config.seed + 7)
    index = ReferenceIndex(ReferenceFiles(POLICY_DIR).current)
    compiled = compile_policy(policy)
    contracts = topics.inbound()
    state = BatchTriageState()
    expected = Expected()
    by_kind: Counter[str] = Counter()
    chunks: list[Chunk] = []
    created_by_chunk: list[list[str]] = []
    recent: list[Message] = []
    resends = invalid = 0
    sent = 0
    while sent < config.signals:
        chunk: list[Message] = []
        created: list[str] = []
        while len(chunk) < config.chunk and sent < config.signals:
            roll = rng.random()
            if roll < 0.03 and recent:
                chunk.append(rng.choice(recent[-1000:]))  # byte for byte again: a platform re-send
                resends += 1
            elif roll < 0.04:
                chunk.append(generator.invalid())
                invalid += 1
            else:
                kind, message = generator.message()
                event = decode_event(message.value, contracts[message.topic])
                if isinstance(event, Rejection):
                    raise AssertionError(f"generated an invalid signal: {event}")
                signal_ = to_signal(event, index.checkpoint_regions())
                judged = event_time(
                    signal_.kind, signal_.occurred_at, now, timedelta(days=400), timedelta(minutes=60)
                )
                if judged != (EventTime.on_time, ""):
                    raise AssertionError(f"generated an event time not on time: {signal_.occurred_at}")
                outcome = triage(signal_, compiled, index, state, now)
                key = str(SourceKey.of(signal_))
                if outcome.action is Action.create:
                    order_id = work_order_id(signal_)
                    state.record(outcome, order_id, now)
                    expected.recorded_as[key] = order_id
                    expected.orders[order_id] = outcome.route.unit
                    created.append(order_id)
                elif outcome.action is Action.merge and outcome.merge_into is not None:
                    state.record(outcome, None, now)
                    expected.recorded_as[key] = outcome.merge_into.id
                    expected.merged += 1
                else:
                    state.record(outcome, None, now)
                    expected.recorded_as[key] = None
                    expected.suppressed += 1
                chunk.append(message)
                recent.append(message)
                by_kind[kind] += 1
            sent += 1
        chunks.append(Chunk(chunk))
        created_by_chunk.append(created)

    # Lifecycle commands: accept then start (same key: one partition, in order) for 40 % of
    # the orders made lag chunks earlier, a quarter of them reassigned by the command
    # center instead, and 10 % of each chunk's commands sent again.
    command_ids: set[str] = set()
    reassigned: dict[str, str] = {}
    squads = sorted(unit for unit in policy.units.ids() if unit != COMMAND_CENTER)
    command_messages = command_resends = 0
    previous: list[Message] = []
    for n, part in enumerate(chunks):
        source = n - config.command_lag_chunks
        for order_id in created_by_chunk[source] if source >= 0 else []:
            if rng.random() >= 0.4:
                continue
            part.targets.append(order_id)
            if rng.random() < 0.25:
                to_unit = rng.choice([unit for unit in squads if unit != expected.orders[order_id]])
                reassigned[order_id] = to_unit
                plan = [("reassign", COMMAND_CENTER, {"to_unit": to_unit})]
            else:
                plan = [(action, expected.orders[order_id], {}) for action in ("accept", "start")]
            for action, unit, extra in plan:
                command_id = f"{order_id}-{action}"
                command = {
                    "schema": "workorder-command/1",
                    "command_id": command_id,
                    "work_order_id": order_id,
                    "action": action,
                    "actor": {"unit": unit, "officer_ids": OFFICERS},
                    "at": now.isoformat(),
                    **extra,
                }
                part.commands.append(Message(topics.commands, order_id.encode(), _json(command)))
                command_ids.add(command_id)
        again = [m for m in previous if rng.random() < 0.1]
        command_resends += len(again)
        command_messages += len(part.commands) + len(again)
        previous = list(part.commands)
        part.commands += again
    return Workload(
        chunks,
        expected,
        signal_messages=sent,
        resends=resends,
        invalid=invalid,
        command_messages=command_messages,
        command_resends=command_resends,
        command_ids=command_ids,
        by_kind=by_kind,
        reassigned=reassigned,
    )
