"""A real Prometheus, with the repo's rules, scraping a running pipeline through a scenario.

One pipeline (``bin/wo run``: embedded broker, SQLite, free ports, escalations checked
every second) runs for the module, and one Prometheus (Debian's ``prometheus`` package)
scrapes it every second and evaluates deploy/prometheus/rules every second. The scenario:
the bundled samples plus two complaints whose upstream deadline has passed; then lifecycle
commands on ``workorders.commands``: orders accepted, closed on time, closed late (an
overdue complaint), returned, reopened (an unsatisfied complainant); an overdue
complaint stays open. The tests compare what Prometheus computes with the database,
evaluate every query of the Grafana dashboard, and check the labels for personal data.
The last test starts a second worker in the same consumer group.

Without the prometheus package the module is skipped with the reason (under CI=true it
fails: deploy/check.sh installs the package there). Every process started here is stopped,
Prometheus included, whatever happens.
"""

from __future__ import annotations

import json
import math
import signal
import sqlite3
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.pipeline_support import (
    REPO_ROOT,
    SAMPLES,
    PipelineProcess,
    clean_env,
    file_lines,
    json_lines,
    metric_samples,
    metric_total,
    wait_for,
)
from tests.monitoring.support import (
    ALLOWED_LABELS,
    JOB,
    PrometheusServer,
    dashboard,
    dashboard_targets,
    require_binary,
    substitute,
)
from workorder_pipeline.config.settings import Topics
from workorder_pipeline.processors.calendar import WorkCalendar
from workorder_pipeline.processors.figures import Figure
from workorder_pipeline.processors.platform_silence import PlatformState, judge
from workorder_pipeline.processors.routing import CONFLICT_OF_INTEREST_KEY
from workorder_pipeline.schemas.commands import CommandAction, EscalationLevel
from workorder_pipeline.schemas.notifications import AttemptOutcome, ChannelType
from workorder_pipeline.schemas.platforms import Cadence
from workorder_pipeline.schemas.signal import SignalKind
from workorder_pipeline.schemas.times import CHINA_STANDARD_TIME as CHINA
from workorder_pipeline.schemas.workorder import Priority
from workorder_pipeline.services.calendar_files import package_schedules
from workorder_pipeline.services.figures import MonthPeriod
from workorder_pipeline.services.platform_files import PLATFORMS_FILE, load_platforms
from workorder_pipeline.services.policy_files import load_policy
from workorder_pipeline.services.sender_keys import SigningKey, policy_dir_with_sender, signed_headers
from workorder_pipeline.streams.metrics import PLATFORM_ID
from workorder_pipeline.streams.resilience import Task, WaitingOn
from workorder_pipeline.wo.embedded_broker import free_port

pytestmark = pytest.mark.e2e

BIN_WO = REPO_ROOT / "bin" / "wo"
START_TIMEOUT_S = 60  # includes bin/wo's first-run bootstrap of .venv
TIMEOUT_S = 30
TOPICS = Topics()
CST = timezone(timedelta(hours=8))
OFFICERS = ["JS0682-0117", "JS0682-0342"]
SAMPLE_FILES = ["vehicle-alarms.jsonl", "suspects.jsonl", "checkin-failures.jsonl", "complaints.jsonl"]
INVALID_FILES = ["invalid.jsonl"]
WINDOWS = ("1d", "7d", "30d")
#: An expected platform no sample comes from (appended to the policy's platforms.yaml).
NEVER_SENDS = """  - id: sz-never-sends
    name: 从未接入的平台
    cadence: continuous
    silent_after_minutes: 15
"""

Json = dict[str, Any]


def utc(value: str) -> datetime:
    """A time as SQLite holds it (UTC without an offset)."""
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def overdue_complaints(now: datetime) -> list[Json]:
    """Three tickets received three days ago whose upstream deadline passed two hours ago."""
    template = next(json_lines(SAMPLES / "complaints.jsonl"))
    tickets = []
    for n, (name, phone, plate) in enumerate(
        [
            ("测试甲", "13900000001", "苏F7Q8W1"),
            ("测试乙", "13900000002", "苏F7Q8W2"),
            ("测试丙", "13900000003", "苏F7Q8W3"),
        ],
        start=1,
    ):
        ticket = json.loads(json.dumps(template))
        ticket["ticket_id"] = f"JS12328-MON-{uuid.uuid4().hex[:8]}-{n}"
        ticket["received_at"] = (now - timedelta(days=3)).astimezone(CST).isoformat()
        ticket["due_at"] = (now - timedelta(hours=2)).astimezone(CST).isoformat()
        ticket["complainant"] = {"name": name, "phone": phone}
        ticket["subject"] = {**ticket["subject"], "plate": plate}
        tickets.append(ticket)
    return tickets


def personal_strings(events: list[Json]) -> set[str]:
    """Plates, complainants' names and phones, ticket and other publisher ids, enterprises."""
    found: set[str] = set()
    for event in events:
        for key in ("plate", "ticket_id", "alarm_id", "entry_id", "check_id"):
            if event.get(key):
                found.add(str(event[key]))
        found.update(str(plate) for plate in event.get("vehicles_moving", []))
        for part in ("complainant", "subject", "enterprise"):
            value = event.get(part) or {}
            for key in ("name", "phone", "plate", "id", "enterprise_id", "enterprise_name", "place"):
                if value.get(key):
                    found.add(str(value[key]))
    return found


@dataclass
class Stack:
    tmp: Path
    env: dict[str, str]
    bootstrap: str
    database: Path
    worker: PipelineProcess
    prometheus: PrometheusServer
    second_metrics_port: int
    personal: set[str]
    applied: int
    scenario: dict[str, str]
    others: list[PipelineProcess] = field(default_factory=list)
    #: The workers trust it (their WO_POLICY_DIR lists it): commands are signed with it.
    signing_key: SigningKey | None = None

    def db(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.database, timeout=10) as conn:
            return conn.execute(sql, params).fetchall()

    def handled(self, process: PipelineProcess) -> float:
        text = process.metrics_text()
        return metric_total(text, "wo_signals_received_total") + metric_total(
            text, "wo_signals_rejected_total"
        )

    def describe(self) -> str:
        return "\n".join([self.worker.tail(), *(p.tail() for p in self.others), self.prometheus.tail()])

    def send(self, topic: str, messages: list[tuple[bytes | None, bytes]]) -> None:
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", request_timeout_ms=10_000)
        try:
            sent = [
                producer.send(topic, key=key, value=value, headers=self._headers(topic, value))
                for key, value in messages
            ]
            for future in sent:
                future.get(timeout=10)
        finally:
            producer.close(timeout=5)

    def _headers(self, topic: str, value: bytes) -> list[tuple[str, bytes]] | None:
        if topic != TOPICS.commands or self.signing_key is None:
            return None
        return signed_headers(self.signing_key, value)

    def publish_files(self, *paths: Path) -> None:
        done = subprocess.run(
            [str(BIN_WO), "publish", *map(str, paths)],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")


def command(order_id: str, action: str, unit: str, at: datetime, **extra: Any) -> Json:
    return {
        "schema": "workorder-command/1",
        "command_id": f"mon-{uuid.uuid4().hex}",
        "work_order_id": order_id,
        "action": action,
        "actor": {"unit": unit, "officer_ids": OFFICERS},
        "at": at.isoformat(),
        **extra,
    }


def run_scenario(stack: Stack, now: datetime) -> int:
    """Lifecycle commands on orders picked from the database; returns how many apply."""
    rows = stack.db(
        "SELECT w.id, w.kind, w.unit, w.due_at, s.source_key FROM work_order w "
        "JOIN work_order_source s ON s.work_order_id = w.id ORDER BY w.id, s.source_key"
    )
    orders: dict[str, tuple[str, str, datetime, str]] = {}
    for order_id, kind, unit, due_at, source in rows:
        orders.setdefault(order_id, (kind, unit, utc(due_at), source))

    def pick(
        kind: str, *, overdue: bool | None, marker: str = "", skip: tuple[str, ...] = ()
    ) -> tuple[str, str]:
        for order_id, (k, unit, due_at, source) in sorted(orders.items()):
            if overdue is not None and (due_at < now) != overdue:
                continue
            if k == kind and marker in source and order_id not in skip:
                return order_id, unit
        raise AssertionError(f"no {kind} order (overdue={overdue}, {marker!r}) in {orders}")

    late, late_unit = pick("complaint", overdue=True, marker="MON-")
    left, _ = pick("complaint", overdue=True, marker="MON-", skip=(late,))
    returned, returned_unit = pick("complaint", overdue=True, marker="MON-", skip=(late, left))
    alarm, alarm_unit = pick("vehicle_alarm", overdue=False)
    accepted, accepted_unit = pick("vehicle_alarm", overdue=False, skip=(alarm,))
    suspect, suspect_unit = pick("suspect", overdue=False)
    checkin, checkin_unit = pick("checkin_failure", overdue=False)
    reopened, reopened_unit = pick("complaint", overdue=None, marker="NT12345")  # a sample ticket
    stack.scenario.update(
        late=late,
        left_overdue=left,
        on_time=alarm,
        suspect=suspect,
        returned=checkin,
        returned_overdue=returned,
        reopened=reopened,
    )
    callback = {"result": "satisfied", "at": now.isoformat()}
    close = {"disposition": "rectification_ordered"}
    commands = [
        command(late, "accept", late_unit, now),
        command(late, "start", late_unit, now),
        command(late, "close", late_unit, now, **close, callback=callback),  # past its due_at: late
        command(alarm, "accept", alarm_unit, now),
        command(alarm, "start", alarm_unit, now),
        command(alarm, "close", alarm_unit, now, **close),  # on time
        command(suspect, "accept", suspect_unit, now),
        command(suspect, "start", suspect_unit, now),
        command(suspect, "feedback", suspect_unit, now, disposition="unfounded"),
        command(suspect, "close", suspect_unit, now),  # on time, with the feedback's disposition
        command(checkin, "accept", checkin_unit, now),
        command(checkin, "return", checkin_unit, now, reason="misrouted"),
        # Past its due_at, returned: its clock stops, it is not overdue at the command center.
        command(returned, "accept", returned_unit, now),
        command(returned, "return", returned_unit, now, reason="not_our_jurisdiction"),
        command(reopened, "accept", reopened_unit, now),
        command(reopened, "start", reopened_unit, now),
        command(  # the complainant is not satisfied: reopened
            reopened,
            "close",
            reopened_unit,
            now,
            **close,
            callback={"result": "unsatisfied", "at": now.isoformat()},
        ),
        command(accepted, "accept", accepted_unit, now),
    ]
    stack.send(
        TOPICS.commands, [(c["work_order_id"].encode(), json.dumps(c).encode("utf-8")) for c in commands]
    )
    return len(commands)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_binary = require_binary("prometheus")
    tmp = tmp_path_factory.mktemp("monitoring")
    ports: set[int] = set()
    while len(ports) < 4:
        ports.add(free_port())
    broker_port, metrics_port, second_port, prometheus_port = sorted(ports)
    database = tmp / "wo.db"
    signing_key = policy_dir_with_sender(REPO_ROOT / "policy", tmp / "policy", "monitoring test", ("*",))
    with (tmp / "policy" / PLATFORMS_FILE).open("a", encoding="utf-8") as platforms:
        platforms.write(NEVER_SENDS)
    env = clean_env(
        WO_POLICY_DIR=str(tmp / "policy"),
        WO_EMBEDDED_BROKER_PORT=str(broker_port),
        WO_METRICS_PORT=str(metrics_port),
        WO_DATA_DIR=str(tmp / "worker-1"),
        WO_DATABASE_URL=f"sqlite:///{database}",
        WO_LOG_FORMAT="json",
        WO_ESCALATION_CHECK_SECONDS="1",
        WO_FIGURES_REFRESH_SECONDS="1",
    )
    worker = PipelineProcess.start([str(BIN_WO), "run"], env, tmp / "logs-1", metrics_port)
    prometheus: PrometheusServer | None = None
    stack: Stack | None = None
    try:
        prometheus = PrometheusServer.start(
            prometheus_binary,
            tmp / "prometheus",
            prometheus_port,
            [f"127.0.0.1:{metrics_port}", f"127.0.0.1:{second_port}"],
        )
        prometheus.wait_ready(TIMEOUT_S)
        worker.wait_metrics(START_TIMEOUT_S)
        now = datetime.now(UTC)
        extra = tmp / "overdue" / "complaints.jsonl"
        extra.parent.mkdir()
        tickets = overdue_complaints(now)
        extra.write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in tickets), encoding="utf-8")
        events = [e for name in SAMPLE_FILES for e in json_lines(SAMPLES / name)] + tickets
        stack = Stack(
            tmp,
            env,
            f"127.0.0.1:{broker_port}",
            database,
            worker,
            prometheus,
            second_port,
            personal_strings(events),
            applied=0,
            scenario={},
            signing_key=signing_key,
        )
        wait_for(
            lambda: metric_total(worker.metrics_text(), "wo_worker_is_leader") == 1 or None,
            START_TIMEOUT_S,
            "the worker to be the group's leader",
            describe=stack.describe,
        )
        # Prometheus must have seen the counters at zero before anything counts.
        instance = f"127.0.0.1:{metrics_port}"
        baseline = (
            f'count_over_time(wo_work_orders_created_total{{instance="{instance}",kind="suspect"}}[1m])'
        )
        wait_for(
            lambda: min(prometheus.values(baseline).values(), default=0) >= 2 or None,
            TIMEOUT_S,
            "two scrapes of the zeroed counters",
            describe=stack.describe,
        )

        messages = sum(len(file_lines(SAMPLES / name)) for name in SAMPLE_FILES + INVALID_FILES)
        messages += len(tickets)
        stack.publish_files(*(SAMPLES / name for name in SAMPLE_FILES + INVALID_FILES), extra)
        wait_for(
            lambda: stack.handled(worker) >= messages or None,
            TIMEOUT_S,
            f"{messages} messages handled",
            describe=stack.describe,
        )
        assert stack.db("SELECT count(*) FROM work_order WHERE status = 'registered'") == [(0,)]
        stack.personal.update(row[0] for row in stack.db("SELECT id FROM work_order"))

        stack.applied = run_scenario(stack, datetime.now(UTC))
        wait_for(
            lambda: metric_total(worker.metrics_text(), "wo_commands_applied_total") >= stack.applied or None,
            TIMEOUT_S,
            f"{stack.applied} commands applied",
            describe=lambda: (
                f"{metric_samples(worker.metrics_text(), 'wo_commands_rejected_total')}\n" + stack.describe()
            ),
        )
        assert metric_total(worker.metrics_text(), "wo_commands_rejected_total") == 0
        yield stack
    finally:
        stop_all([*(stack.others if stack else []), worker])
        if prometheus is not None:
            prometheus.stop()


def stop_all(processes: list[PipelineProcess], timeout_s: float = 20) -> None:
    """SIGTERM to every worker at once, then wait for each (SIGKILL after ``timeout_s``)."""
    for process in processes:
        if process.process.poll() is None:
            process.process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.process.kill()
            process.process.wait(timeout=10)


# --- what the database says ---------------------------------------------------------------


def closed_per_unit_and_kind(stack: Stack) -> tuple[Counter[tuple[str, str]], Counter[tuple[str, str]]]:
    closed: Counter[tuple[str, str]] = Counter()
    on_time: Counter[tuple[str, str]] = Counter()
    for unit, kind, in_time in stack.db(
        "SELECT unit, kind, closed_on_time FROM work_order WHERE status = 'closed'"
    ):
        closed[(unit, kind)] += 1
        on_time[(unit, kind)] += 1 if in_time else 0
    return closed, on_time


def same(got: dict[Any, float], expected: dict[Any, float]) -> bool:
    return got.keys() == expected.keys() and all(
        got[key] == pytest.approx(value, rel=1e-9) for key, value in expected.items()
    )


def wait_equal(stack: Stack, expr: str, labels: tuple[str, ...], expected: dict[Any, float]) -> None:
    """Poll Prometheus until ``expr`` equals ``expected`` (rules are evaluated every second)."""
    last: dict[Any, float] = {}

    def probe() -> bool:
        nonlocal last
        last = stack.prometheus.values(expr, *labels)
        return same(last, expected)

    try:
        wait_for(probe, TIMEOUT_S, f"{expr} to equal the database")
    except AssertionError:
        assert last == expected, f"{expr}: Prometheus has {last}, the database says {expected}"


# --- the tests --------------------------------------------------------------------------


def test_scenario_closed_orders_on_time_and_late_and_left_some_overdue(stack: Stack) -> None:
    closed, on_time = closed_per_unit_and_kind(stack)
    assert sum(closed.values()) == 3 and sum(on_time.values()) == 2
    statuses = dict(stack.db("SELECT id, status FROM work_order"))
    assert statuses[stack.scenario["late"]] == "closed"
    assert statuses[stack.scenario["returned"]] == "returned"
    assert statuses[stack.scenario["returned_overdue"]] == "returned"
    assert statuses[stack.scenario["reopened"]] == "in_progress"
    now = datetime.now(UTC)
    overdue = [
        order_id
        for order_id, status, due_at in stack.db("SELECT id, status, due_at FROM work_order")
        if status not in ("closed", "returned") and utc(due_at) < now
    ]
    assert stack.scenario["left_overdue"] in overdue
    assert stack.scenario["returned_overdue"] not in overdue


def closed_of_this_month(stack: Stack) -> dict[tuple[str], float]:
    """办结率 by hand: of the orders created this calendar month (China time), per the unit
    holding each now, the share closed now."""
    month = datetime.now(CHINA).strftime("%Y-%m")
    counts: dict[str, list[int]] = {}
    for unit, status, created_at in stack.db("SELECT unit, status, created_at FROM work_order"):
        if utc(created_at).astimezone(CHINA).strftime("%Y-%m") == month:
            pair = counts.setdefault(unit, [0, 0])
            pair[0] += status == "closed"
            pair[1] += 1
    return {(unit,): closed / count for unit, (closed, count) in counts.items()}


def test_closure_rate_per_unit_equals_the_database(stack: Stack) -> None:
    closure = closed_of_this_month(stack)
    assert any(0 < rate < 1 for rate in closure.values()), closure  # some closed, some not
    labels = ("unit",)
    wait_equal(stack, 'unit:wo_figure:ratio{figure="closed", period="this_month"}', labels, closure)
    panel = next(p for p in dashboard()["panels"] if str(p["title"]).startswith("Closed (办结率)"))
    this_month = substitute(str(panel["targets"][0]["expr"]), {"unit": ".*", "kind": ".*"})
    wait_equal(stack, this_month, labels, closure)


def test_open_and_overdue_orders_per_unit_equal_the_database(stack: Stack) -> None:
    now = datetime.now(UTC)
    open_: Counter[tuple[str]] = Counter()
    overdue: Counter[tuple[str]] = Counter()
    returned_overdue = 0
    for unit, status, due_at in stack.db("SELECT unit, status, due_at FROM work_order"):
        if status != "closed":
            open_[(unit,)] += 1
            # A returned order's clock is stopped: open at the command center, not overdue.
            overdue[(unit,)] += 1 if status != "returned" and utc(due_at) < now else 0
            returned_overdue += status == "returned" and utc(due_at) < now
    units = {(unit,) for unit in load_policy(REPO_ROOT / "policy").units.ids()}
    assert sum(overdue.values()) >= 1 and returned_overdue >= 1
    wait_equal(stack, "sum by (unit) (wo_work_orders_open)", ("unit",), {u: float(open_[u]) for u in units})
    wait_equal(
        stack, "sum by (unit) (wo_work_orders_overdue)", ("unit",), {u: float(overdue[u]) for u in units}
    )
    # Orders the scenario did not close are the oldest open ones of their unit: minutes old.
    ages = stack.prometheus.values("max by (unit) (wo_work_orders_oldest_open_age_seconds)", "unit")
    assert ages.keys() == {u for u in open_ if open_[u]} and all(0 <= age < 3600 for age in ages.values())


def test_platform_silence_in_prometheus_is_the_judgement_of_the_database(stack: Stack) -> None:
    registry = load_platforms(stack.tmp / "policy")
    rows = stack.db("SELECT platform, last_event_at FROM platform_seen")
    seen = {platform: utc(at) for platform, at in rows}
    assert "sz-never-sends" not in seen
    assert {"js-key-vehicles", "rectification", "complaint-12345"} <= seen.keys()
    calendar = WorkCalendar(package_schedules())
    now = datetime.now(UTC)
    expected = {
        (p.id,): 0.0 if judge(p, seen.get(p.id), now, calendar) is PlatformState.heard else 1.0
        for p in registry.platforms
    }
    assert expected[("sz-never-sends",)] == 1.0 and expected[("js-key-vehicles",)] == 1.0  # samples days old
    wait_equal(stack, "max by (platform) (wo_platform_silent)", ("platform",), expected)
    last_seen = {(p.id,): seen[p.id].timestamp() for p in registry.platforms if p.id in seen}
    wait_equal(stack, "max by (platform) (wo_platform_last_seen_timestamp_seconds)", ("platform",), last_seen)
    alerts: dict[str, set[str]] = {}

    def both_alerts_pending() -> bool:
        alerts.clear()
        for alert in stack.prometheus.api("alerts")["alerts"]:
            alerts.setdefault(alert["labels"]["alertname"], set()).add(alert["labels"].get("platform", ""))
        return "sz-never-sends" in alerts.get("PublishingPlatformNeverSent", set()) and (
            "js-key-vehicles" in alerts.get("PublishingPlatformSilent", set())
        )

    try:
        wait_for(both_alerts_pending, TIMEOUT_S, "the silence alerts to be pending", interval_s=1)
    except AssertionError as exc:
        raise AssertionError(f"alerts: {alerts}\n{exc}") from None
    assert "sz-never-sends" not in alerts.get("PublishingPlatformSilent", set())


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert {"unit", "kind"} <= variables.keys()
    for name in ("unit", "kind"):  # label_values(metric, label): the variables' choices
        metric, label = (
            variables[name]["query"]["query"].removeprefix("label_values(").rstrip(")").split(", ")
        )
        assert stack.prometheus.api(f"label/{label}/values", **{"match[]": metric}), name
    queries = []
    for window in WINDOWS:
        values = {"unit": ".*", "kind": ".*", "window": window, "__rate_interval": "5m"}
        queries += [
            (f"{title} [{window}]", substitute(expr, values))
            for title, expr in dashboard_targets(board)
            # The stack's orders are all of this month: last month's figures judge nothing
            # and draw no bar (never a NaN one).
            if (window == WINDOWS[0] or "$window" in expr) and 'period="last_month"' not in expr
        ]
    empty: list[str] = []

    def all_answer() -> bool:  # the rules and the lag need a few seconds after the scenario
        empty[:] = []
        for title, expr in queries:
            samples = stack.prometheus.query(expr)
            if not any(math.isfinite(float(s["value"][1])) for s in samples):
                empty.append(f"{title}: {expr} -> {samples}")
        return not empty

    try:
        wait_for(all_answer, TIMEOUT_S, "every dashboard query to return data", interval_s=1)
    except AssertionError as exc:  # the last error names a query Prometheus refused
        raise AssertionError("queries without data:\n" + "\n".join(empty) + f"\n{exc}") from None


def test_every_rule_is_loaded_and_evaluates_without_error(stack: Stack) -> None:
    groups = stack.prometheus.api("rules")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) >= 20
    broken = [(rule["name"], rule.get("lastError")) for rule in rules if rule["health"] != "ok"]
    assert broken == []
    # A scenario with events days old and an overdue order: these alerts are at least pending
    # once the rules were evaluated on the scraped samples (every second; later on a busy machine).
    firing: set[str] = set()

    def expected_alert_pending() -> bool:
        firing.clear()
        firing.update(alert["labels"]["alertname"] for alert in stack.prometheus.api("alerts")["alerts"])
        return bool({"PipelineLatencyHigh", "PublishingPlatformSilent"} & firing)

    try:
        wait_for(
            expected_alert_pending, TIMEOUT_S, "PipelineLatencyHigh or PublishingPlatformSilent", interval_s=1
        )
    except AssertionError as exc:
        raise AssertionError(f"alerts pending or firing: {sorted(firing)}\n{exc}") from None


def label_problems(text: str, personal: set[str]) -> list[str]:
    """Every label of every ``wo_`` sample: a closed set, and nothing personal in it."""
    policy = load_policy(REPO_ROOT / "policy")
    closed_sets = {
        "kind": {k.value for k in SignalKind},
        "unit": set(policy.units.ids()),
        "priority": {p.value for p in Priority},
        "level": {level.value for level in EscalationLevel},
        "on_time": {"true", "false"},
        "topic": set(TOPICS.all()),
        "route": {route.key for route in policy.routing.route.walk()} | {CONFLICT_OF_INTEREST_KEY},
        "action": {a.value for a in CommandAction},
        "task": {task.value for task in Task},
        "on": {cause.value for cause in WaitingOn},
        "cadence": {cadence.value for cadence in Cadence},
        "figure": {figure.value for figure in Figure},
        "period": {period.value for period in MonthPeriod},
        "channel": {channel.value for channel in ChannelType},
        "outcome": {outcome.value for outcome in AttemptOutcome},
    }
    problems = []
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("wo_"):
            continue
        for sample in family.samples:
            for label, value in sample.labels.items():
                where = f"{sample.name}{{{label}={value!r}}}"
                if label == "le":
                    float(value)
                    continue
                if label not in ALLOWED_LABELS:
                    problems.append(f"{where}: label {label!r} is not allowed")
                elif label in closed_sets and value not in closed_sets[label]:
                    problems.append(f"{where}: not one of {sorted(closed_sets[label])}")
                elif label == "platform" and not PLATFORM_ID.match(value):
                    problems.append(f"{where}: not a platform id")
                elif label == "reason" and not value.replace("_", "").isalpha():
                    problems.append(f"{where}: not a reason code")
                problems += [f"{where}: holds {p!r}" for p in personal if p and (p == value or p in value)]
    return problems


def test_no_label_holds_personal_data_or_free_text(stack: Stack) -> None:
    text = stack.worker.metrics_text()
    assert "wo_work_orders_closed_total" in text and "wo_platform_last_event_timestamp_seconds" in text
    assert {"苏F7Q8W1", "测试甲", "13900000001"} <= stack.personal
    assert stack.scenario["late"] in stack.personal  # work-order ids
    assert label_problems(text, stack.personal) == []


def test_exposition_passes_promtool_check_metrics(stack: Stack) -> None:
    promtool = require_binary("promtool")
    done = subprocess.run(
        [promtool, "check", "metrics"],
        input=stack.worker.metrics_text().encode(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, (done.stdout + done.stderr).decode(errors="replace")
    assert done.stdout.strip() == b"" and done.stderr.strip() == b"", done


def test_a_second_worker_exports_the_database_gauges_once_and_counters_add_up(stack: Stack) -> None:
    env = {
        **stack.env,
        "WO_KAFKA_BOOTSTRAP": stack.bootstrap,
        "WO_METRICS_PORT": str(stack.second_metrics_port),
        "WO_DATA_DIR": str(stack.tmp / "worker-2"),
    }
    second = PipelineProcess.start([str(BIN_WO), "run"], env, stack.tmp / "logs-2", stack.second_metrics_port)
    stack.others.append(second)
    workers = [stack.worker, second]
    second.wait_metrics(START_TIMEOUT_S)

    def settled() -> bool:
        texts = [w.metrics_text() for w in workers]
        inbound = [
            sum(
                v
                for k, v in metric_samples(t, "wo_kafka_assigned_partitions").items()
                if dict(k)["topic"] in TOPICS.inbound()
            )
            for t in texts
        ]
        leaders = [metric_total(t, "wo_worker_is_leader") for t in texts]
        return all(inbound) and sum(inbound) == 4 * 6 and sorted(leaders) == [0, 1]

    wait_for(settled, START_TIMEOUT_S, "both workers to share the partitions", describe=stack.describe)
    before = sum(stack.handled(w) for w in workers)
    template = json.loads(file_lines(SAMPLES / "vehicle-alarms.jsonl")[0])  # a 12 % overspeed
    alarms = []
    for n in range(12):
        alarm = {
            **template,
            "alarm_id": f"MON-{uuid.uuid4().hex[:10]}",
            "plate": f"苏FM{n:04d}",
            "occurred_at": (datetime.now(UTC) - timedelta(minutes=1)).astimezone(CST).isoformat(),
        }
        stack.personal.update({alarm["plate"], alarm["alarm_id"]})
        alarms.append((alarm["plate"].encode(), json.dumps(alarm, ensure_ascii=False).encode()))
    stack.send(TOPICS.vehicle_alarms, alarms)
    wait_for(
        lambda: sum(stack.handled(w) for w in workers) >= before + len(alarms) or None,
        TIMEOUT_S,
        "the new alarms handled",
        describe=stack.describe,
    )

    orders = stack.db("SELECT count(*) FROM work_order")[0][0]
    open_orders = stack.db("SELECT count(*) FROM work_order WHERE status != 'closed'")[0][0]
    texts = [w.metrics_text() for w in workers]
    exporting = [t for t in texts if metric_samples(t, "wo_work_orders_open")]
    assert len(exporting) == 1, "the database gauges must come from the leader only"
    assert metric_total(exporting[0], "wo_work_orders_open") == open_orders
    assert sum(metric_total(t, "wo_work_orders_created_total") for t in texts) == orders
    for text in texts:
        assert label_problems(text, stack.personal) == []

    # What Prometheus makes of the two: one exporter of the gauges, counters summed.
    wait_equal(stack, f'count(count by (instance) (wo_work_orders_open{{job="{JOB}"}}))', (), {(): 1.0})
    wait_equal(stack, "sum(wo_work_orders_open)", (), {(): float(open_orders)})
    wait_equal(stack, "sum(wo_work_orders_created_total)", (), {(): float(orders)})
    wait_equal(stack, "sum(wo_worker_is_leader)", (), {(): 1.0})
    wait_equal(stack, 'count(up{job="workorder-pipeline"} == 1)', (), {(): 2.0})
