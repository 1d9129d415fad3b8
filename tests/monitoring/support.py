"""Helpers of the monitoring tests: Prometheus binaries, a Prometheus server, the repo's files."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import skip_unless_ci
from tests.integration.pipeline_support import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
RULES_DIR = DEPLOY / "prometheus" / "rules"
RULE_TESTS_DIR = DEPLOY / "prometheus" / "tests"
DASHBOARDS_DIR = DEPLOY / "grafana" / "dashboards"
DASHBOARD = DASHBOARDS_DIR / "work-order-closure.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
JOB = "workorder-pipeline"

Json = dict[str, Any]


def require_binary(name: str) -> str:
    """The path of ``name`` (promtool, prometheus: Debian's ``prometheus`` package). Missing:
    skipped with the reason, except under ``CI=true`` (deploy/check.sh installs it there)."""
    path = shutil.which(name)
    if path is None:
        skip_unless_ci(
            f"{name!r} is not installed: install Debian's 'prometheus' package "
            "(apt-get install prometheus; deploy/check.sh does it in CI)"
        )
    return path


# --- the repo's files -------------------------------------------------------------------


def rule_files() -> list[Path]:
    return sorted(RULES_DIR.glob("*.yml"))


def rule_groups() -> list[Json]:
    groups: list[Json] = []
    for path in rule_files():
        groups += yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    return groups


def recorded_names() -> set[str]:
    return {rule["record"] for group in rule_groups() for rule in group["rules"] if "record" in rule}


def dashboard() -> Json:
    document: Json = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return document


def dashboard_targets(board: Json) -> list[tuple[str, str]]:
    """(panel title, expr) of every query of every panel."""
    found = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            found.append((str(panel["title"]), str(target["expr"])))
    return found


_VARIABLE = re.compile(r"\$\{?(\w+)(?::\w+)?\}?")


def substitute(expr: str, values: dict[str, str]) -> str:
    """``expr`` with Grafana's variables replaced; an unknown variable fails the test."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise AssertionError(f"unknown dashboard variable ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)


# --- a Prometheus server ----------------------------------------------------------------


def rules_for_test(directory: Path) -> list[Path]:
    """The repo's rule files with every group evaluated at the global evaluation interval
    (the test's 1 s instead of the groups' minutes); the rules themselves unchanged."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for path in rule_files():
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in document["groups"]:
            group.pop("interval", None)
        target = directory / path.name
        target.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
        written.append(target)
    return written


@dataclass
class PrometheusServer:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @classmethod
    def start(cls, binary: str, workdir: Path, port: int, targets: list[str]) -> PrometheusServer:
        """A Prometheus on 127.0.0.1:``port`` scraping ``targets`` every second with the repo's rules."""
        rules = rules_for_test(workdir / "rules")
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rules],
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": targets}]}],
        }
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
        log_path = workdir / "prometheus.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        return cls(process, port, log_path)

    def tail(self, chars: int = 3000) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return f"--- prometheus (exit {self.process.poll()}) ---\n{text[-chars:]}"

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.process.returncode}\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() >= deadline:
                raise AssertionError(f"prometheus not ready after {timeout_s:g} s\n{self.tail()}")
            time.sleep(0.2)

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # a bad query: show Prometheus's reason
            body = json.loads(exc.read() or b"{}")
            raise AssertionError(f"{path} {params}: HTTP {exc.code}: {body.get('error')}") from exc
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[Json]:
        """An instant query's vector (a scalar comes back as one sample without labels)."""
        data = self.api("query", query=expr)
        if data["resultType"] == "vector":
            result: list[Json] = data["result"]
            return result
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        raise AssertionError(f"{expr}: unexpected result type {data['resultType']}")

    def values(self, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
        """The query's samples keyed by the values of ``labels``."""
        return {
            tuple(sample["metric"].get(label, "") for label in labels): float(sample["value"][1])
            for sample in self.query(expr)
        }

    def stop(self, timeout_s: float = 10) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


#: Label names a metric of ours may carry (closed sets; platform is bounded: see metrics.py).
ALLOWED_LABELS = {
    "kind",
    "unit",
    "priority",
    "reason",
    "route",
    "level",
    "platform",
    "cadence",
    "topic",
    "on_time",
    "action",
    "task",  # streams/resilience.Task
    "on",  # streams/resilience.WaitingOn
    "figure",  # processors/figures.Figure
    "period",  # services/figures.MonthPeriod
    "channel",  # schemas/notifications.ChannelType
    "outcome",  # schemas/notifications.AttemptOutcome
}
