"""deploy/prometheus, deploy/grafana and docker-compose.yml agree with each other and with
the metrics the code exports. (Their PromQL runs against a real Prometheus in
test_prometheus_stack.py; deploy/check.sh validates them with promtool and docker-compose.)"""

from __future__ import annotations

import re
import subprocess

import yaml
from prometheus_client import REGISTRY

import workorder_pipeline.streams.metrics
import workorder_pipeline.streams.topic_watch
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
from workorder_pipeline.schemas.platforms import PlatformRegistry
from workorder_pipeline.streams.figure_gauges import FigureCollector
from workorder_pipeline.streams.platform_watch import PlatformSilenceCollector
from workorder_pipeline.streams.supervision import ConsumerLagCollector, SupervisionCollector

NAME = re.compile(r"\b(wo_[a-z0-9_]+|[a-z_]+:wo_[a-z0-9_]+:[a-z0-9_$]+)")


#: Modules whose metrics register when imported (exported_names reads the registry).
METRIC_MODULES = (workorder_pipeline.streams.metrics, workorder_pipeline.streams.topic_watch)


def exported_names() -> set[str]:
    """Every sample name our metrics can have (histograms: _bucket, _sum, _count)."""
    names: set[str] = set()
    collectors: list[
        SupervisionCollector | ConsumerLagCollector | PlatformSilenceCollector | FigureCollector
    ] = [
        SupervisionCollector(None, [], lambda: False),  # type: ignore[arg-type]
        ConsumerLagCollector([], []),
        PlatformSilenceCollector(None, PlatformRegistry(), None, lambda: False),  # type: ignore[arg-type]
        FigureCollector(None, lambda: False),  # type: ignore[arg-type]
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
    assert len(ratios) == 3 and [r for r in ratios if r not in tested] == []


def test_rules_and_dashboard_use_only_metrics_that_exist() -> None:
    known = known_names()
    expressions = [rule["expr"] for group in rule_groups() for rule in group["rules"]]
    expressions += [expr for _title, expr in dashboard_targets(dashboard())]
    unknown = {name for expr in expressions for name in NAME.findall(expr) if name not in known}
    assert unknown == set()


def test_recording_rules_divide_summed_numerators_by_summed_denominators_once() -> None:
    by_name = {rule["record"]: rule for group in rule_groups() for rule in group["rules"] if "record" in rule}
    for level in ("unit_kind", "unit", "figure"):
        expr = " ".join(by_name[f"{level}:wo_figure:ratio"]["expr"].split())
        assert expr.count(" / ") == 1 and "> 0)" in expr, expr  # 0 / 0: no sample, not NaN
    assert "max by (unit, kind, figure, period)" in by_name["unit_kind:wo_figure_numerator:max"]["expr"]
    assert "sum by (unit, figure, period)" in by_name["unit:wo_figure_denominator:sum"]["expr"]
    # The closure rate of a window (closures / creations, credited to different units) is gone.
    assert not [name for name in by_name if "closed_per_created" in name]


def test_dashboard_has_what_supervisors_watch_and_filters_by_unit_and_kind() -> None:
    board = dashboard()
    assert board["title"] == "Work-order closure" and board["uid"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    for name in ("unit", "kind"):
        assert (
            variables[name]["multi"] and variables[name]["includeAll"] and variables[name]["allValue"] == ".*"
        )
    titles = " | ".join(title.lower() for title, _ in dashboard_targets(board))
    for label in ("办结率", "按时办结率", "按时签收率", "满意率", "发回重办率", "退单率", "延期率", "评分"):
        assert f"({label}) per unit: this month vs last month" in titles, label
    for needed in (
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
        if "wo_work_order" in expr or "wo_escalations" in expr or "wo_figure_numerator" in expr:
            assert '$unit"' in expr and '$kind"' in expr, title


def test_every_figure_panel_compares_this_month_with_last_month_without_nan_bars() -> None:
    panels = [p for p in dashboard()["panels"] if "this month vs last month" in str(p["title"])]
    assert len(panels) == 8
    for panel in panels:
        exprs = [str(t["expr"]) for t in panel["targets"]]
        assert [('period="this_month"' in e, 'period="last_month"' in e) for e in exprs] == [
            (True, False),
            (False, True),
        ], panel["title"]
        for expr in exprs:
            assert "wo_figure_score" in expr or " > 0)" in expr, panel["title"]  # 0 / 0 draws no bar


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
    from workorder_pipeline.wo.kafka_cluster import kafka_version

    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    image = compose["services"]["kafka"]["image"]
    assert image == f"apache/kafka:{kafka_version()}", (
        f"docker-compose.yml runs {image}; the tests run Apache Kafka {kafka_version()} (pom.xml)"
    )
