#!/usr/bin/env bash
# Validate the deployment files: docker-compose.yml, the Prometheus config, its rules and
# their unit tests, and the Grafana provisioning and dashboards.
#
#   bash deploy/check.sh        (from any directory; CI calls it)
#
# Needs `docker-compose` (Debian's package: validates without a Docker engine) and
# `promtool` (Debian's `prometheus` package). When one is missing and we are root,
# it is installed with apt-get (bin/_debian.sh: no services are started); otherwise the
# script stops with a clear error.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'deploy/check: %s\n' "$*"; }
die() { printf 'deploy/check: error: %s\n' "$*" >&2; exit 1; }

# shellcheck source=bin/_debian.sh
source bin/_debian.sh
ensure() { ensure_debian_package "$1" "$2" || die "cannot get '$1' (see above)"; }

ensure docker-compose docker-compose
ensure promtool prometheus

log "$(docker-compose version --short 2>/dev/null || docker-compose --version), $(promtool --version 2>&1 | head -n1)"

log "docker-compose -f docker-compose.yml config -q"
docker-compose -f docker-compose.yml config -q

log "promtool check config deploy/prometheus/prometheus.yml"
promtool check config deploy/prometheus/prometheus.yml

shopt -s nullglob
rules=(deploy/prometheus/rules/*.yml)
shopt -u nullglob
[[ ${#rules[@]} -gt 0 ]] || die "no rule files in deploy/prometheus/rules/"
log "promtool check rules ${rules[*]}"
promtool check rules "${rules[@]}"

shopt -s nullglob
rule_tests=(deploy/prometheus/tests/*.yml)
shopt -u nullglob
[[ ${#rule_tests[@]} -gt 0 ]] || die "no rule tests in deploy/prometheus/tests/"
log "promtool test rules ${rule_tests[*]}"
promtool test rules "${rule_tests[@]}"

# Grafana: every dashboard is JSON with a uid and a title, and every panel and variable
# queries the provisioned Prometheus datasource by its uid. (Their PromQL is evaluated
# against a real Prometheus by tests/monitoring.)
log "grafana: deploy/grafana/dashboards/*.json against deploy/grafana/provisioning/"
python3 - <<'PY' || die "grafana provisioning or dashboards are invalid (see above)"
import json
import pathlib
import re
import sys

root = pathlib.Path("deploy/grafana")
datasources = (root / "provisioning/datasources/prometheus.yml").read_text()
uids = set(re.findall(r"^\s+uid:\s*(\S+)\s*$", datasources, re.M))
problems = []
dashboards = sorted((root / "dashboards").glob("*.json"))
if not dashboards:
    problems.append("no dashboard in deploy/grafana/dashboards/")
for path in dashboards:
    try:
        board = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        problems.append(f"{path}: not JSON: {exc}")
        continue
    for key in ("uid", "title", "panels"):
        if not board.get(key):
            problems.append(f"{path}: no {key}")
    things = [*board.get("panels", []), *board.get("templating", {}).get("list", [])]
    things += [t for p in board.get("panels", []) for t in p.get("targets", [])]
    for thing in things:
        uid = (thing.get("datasource") or {}).get("uid")
        if thing.get("type") not in ("row", "custom") and uid not in uids:
            problems.append(f"{path}: {thing.get('title') or thing.get('name') or thing.get('refId')}: "
                            f"datasource uid {uid!r} is not provisioned ({sorted(uids)})")
    for panel in board.get("panels", []):
        if panel.get("type") != "row" and not all(t.get("expr") for t in panel.get("targets", [None])):
            problems.append(f"{path}: panel {panel.get('title')!r} has a target without expr")
for problem in problems:
    print(f"deploy/check: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY

log "OK: deploy files are valid"
