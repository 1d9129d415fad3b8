"""deploy/prometheus, deploy/grafana and docker-compose.yml agree with each other and with
the metrics the code exports. (Their PromQL runs against a real Prometheus in
test_prometheus_stack.py; deploy/check.sh validates them with promtool and docker-compose.)"""

from __future__ import annotations

import re
import subprocess

import yaml
from prometheus_client import REGISTRY

import streams.metrics
import streams.topic_watch
from schemas.platforms import PlatformRegistry
from streams.platform_watch import PlatformSilenceCollector
from streams.supervision import ConsumerLagCollector, SupervisionCollector
from tests.integration.pipeline_support import REPO_ROOT
from tests.monitoring.support import (
    DATASOURCES,
    DEPLOY,
    RULE_TESTS_DIR,
    dashboard,
    dashboard_targets,
    recorded_names,
    require_binary,
    rule_files,
    rule_groups,
)

NAME = re.compile(r"\b(wo_[a-z0-9_]+|[a-z_]+:wo_[a-z0-9_]+:[a-z0-9_$]+)")


#: Modules whose metrics register when imported (exported_names reads the registry).
METRIC_MODULES = (streams.metrics, streams.topic_watch)


def exported_names() -> set[str]:
    """Every sample name our metrics can have (histograms: _bucket, _sum, _count)."""
    names: set[str] = set()
    collectors: list[SupervisionCollector | ConsumerLagCollector | PlatformSilenceCollector] = [
        SupervisionCollector(None, [], lambda: False),  # type: ignore[arg-type]
        ConsumerLagCollector([], []),
        PlatformSilenceCollector(None, PlatformRegistry(), None, lambda: False),  # type: ignore[arg-type]
    ]
    families = [*REGISTRY.collect(), *(f for collector in collectors for f in collector.describe())]
    for family in families:
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
        names |= {family.name + suffix for suffix in suffixes}
    return names


def known_names() -> set[str]:
    recorded = recorded_names()
    windowed = {re.sub(r"(1d|7d|30d)$", "$window", name) for name in recorded}
    return exported_names() | recorded | windowed


def test_promtool_runs_the_rule_unit_tests() -> None:
    promtool = require_binary("promtool")
    tests = sorted(RULE_TESTS_DIR.glob("*.yml"))
    assert tests
    done = subprocess.run(
        [promtool, "test", "rules", *map(str, tests)], capture_output=True, timeout=120, check=False
    )
    assert done.returncode == 0, (done.stdout + done.stderr).decode(errors="replace")


def test_every_rule_is_unit_tested() -> None:
    tested = " ".join(path.read_text(encoding="utf-8") for path in RULE_TESTS_DIR.glob("*.yml"))
    alerts = [rule["alert"] for group in rule_groups() for rule in group["rules"] if "alert" in rule]
    assert alerts and [a for a in alerts if f"alertname: {a}" not in tested] == []
    ratios = [name for name in recorded_names() if ":ratio" in name]
    assert len(ratios) == 6 and [r for r in ratios if r not in tested] == []


def test_rules_and_dashboard_use_only_metrics_that_exist() -> None:
    known = known_names()
    expressions = [rule["expr"] for group in rule_groups() for rule in group["rules"]]
    expressions += [expr for _title, expr in dashboard_targets(dashboard())]
    unknown = {name for expr in expressions for name in NAME.findall(expr) if name not in known}
    assert unknown == set()


def test_recording_rules_cover_closure_and_on_time_rates_per_unit_and_kind() -> None:
    by_name = {rule["record"]: rule for group in rule_groups() for rule in group["rules"] if "record" in rule}
    for window in ("1d", "7d", "30d"):
        for rate in ("closed_per_created", "closed_on_time_per_closed"):
            assert f"unit_kind:wo_work_orders_{rate}:ratio{window}" in by_name
        assert f"[{window}]" in by_name[f"unit_kind:wo_work_orders_created:increase{window}"]["expr"]
        assert "sum by (unit, kind)" in by_name[f"unit_kind:wo_work_orders_closed:increase{window}"]["expr"]


def test_dashboard_has_what_supervisors_watch_and_filters_by_unit_and_kind() -> None:
    board = dashboard()
    assert board["title"] == "Work-order closure" and board["uid"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    for name in ("unit", "kind"):
        assert (
            variables[name]["multi"] and variables[name]["includeAll"] and variables[name]["allValue"] == ".*"
        )
    titles = " | ".join(title.lower() for title, _ in dashboard_targets(board))
    for needed in (
        "closure rate per unit",
        "on-time closure rate per unit",
        "open orders per unit",
        "overdue orders per unit",
        "time to close p50 / p90",
        "inflow by kind",
        "escalations",
        "dead letters",
        "pipeline latency",
        "publishing platforms",
    ):
        assert needed in titles, needed
    # Every query of a panel about orders honours the unit and kind filters.
    for title, expr in dashboard_targets(board):
        if "wo_work_order" in expr or "wo_escalations" in expr:
            assert '$unit"' in expr and '$kind"' in expr, title


def test_dashboard_queries_the_provisioned_datasource() -> None:
    uids = {source["uid"] for source in yaml.safe_load(DATASOURCES.read_text())["datasources"]}
    board = dashboard()
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] in uids, panel["title"]
            assert {t["datasource"]["uid"] for t in panel["targets"]} <= uids, panel["title"]
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/workorders.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"


def test_compose_runs_the_whole_stack_and_prometheus_scrapes_every_worker() -> None:
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    workers = sorted(name for name, service in services.items() if service.get("command") == ["run"])
    assert workers == ["worker-1", "worker-2"]
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    for name in ("kafka", "postgres", *workers, "prometheus", "grafana"):
        assert services[name].get("healthcheck"), f"{name} has no healthcheck"
        assert services[name].get("volumes"), f"{name} keeps no volume"
    mounts = " ".join(services["prometheus"]["volumes"] + services["grafana"]["volumes"])
    for path in ("./deploy/prometheus/rules", "./deploy/grafana/provisioning", "./deploy/grafana/dashboards"):
        assert path in mounts
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "workorder-pipeline")
    targets = [t for static in job["static_configs"] for t in static["targets"]]
    assert targets == [f"{worker}:9464" for worker in workers]
    assert config["rule_files"] == ["rules/*.yml"] and rule_files()


def test_compose_runs_the_kafka_version_the_tests_run() -> None:
    """One pin: deploy/kafka/pom.xml. The compose image must be that same release."""
    from wo.kafka_cluster import kafka_version

    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    image = compose["services"]["kafka"]["image"]
    assert image == f"apache/kafka:{kafka_version()}", (
        f"docker-compose.yml runs {image}; the tests run Apache Kafka {kafka_version()} (pom.xml)"
    )
