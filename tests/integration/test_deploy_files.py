"""The monitoring files of deploy/ as Prometheus reads them, checked by promtool: the config
with its rule file, the alert rules and their unit tests (deploy/alerts.test.yml), and every
query of the Grafana dashboard. tests/e2e/test_prometheus.py runs them against a real stack."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.roles import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
PROMETHEUS_CONFIG = DEPLOY / "prometheus.yml"
ALERTS = DEPLOY / "alerts.yml"
ALERTS_TESTS = DEPLOY / "alerts.test.yml"
DASHBOARD = DEPLOY / "grafana/dashboards/inferflow.json"

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not found (Debian/Ubuntu: apt-get install prometheus)"
)


def alert_rules() -> list[dict[str, Any]]:
    """The alerting rules of deploy/alerts.yml, all groups together."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def dashboard_queries() -> dict[str, str]:
    """Every PromQL query of the dashboard, by "<panel title> <refId>"."""
    dashboard = json.loads(DASHBOARD.read_text())
    return {
        f"{panel['title']} {target['refId']}": target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    }


def metric_names(exprs: Iterable[str]) -> set[str]:
    return {name for expr in exprs for name in re.findall(r"inferflow_\w+", expr)}


def promtool(*args: str, cwd: Path | None = None) -> str:
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


@needs_promtool
def test_the_prometheus_config_is_valid_and_loads_the_alert_rules(tmp_path: Path):
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    # Prometheus resolves rule files against the config's directory: the same name works in
    # the container (/etc/prometheus) and here (deploy/).
    rule_files = [PROMETHEUS_CONFIG.parent / name for name in config["rule_files"]]
    assert rule_files == [ALERTS]
    # From elsewhere, so a path that only resolves against the working directory would fail.
    promtool("check", "config", str(PROMETHEUS_CONFIG), cwd=tmp_path)


@needs_promtool
def test_the_alert_rules_are_valid():
    promtool("check", "rules", str(ALERTS))


@needs_promtool
def test_the_alert_rules_pass_their_unit_tests(tmp_path: Path):
    promtool("test", "rules", str(ALERTS_TESTS), cwd=tmp_path)


def test_every_alert_has_unit_tests_that_fire_it_and_keep_it_silent():
    cases: dict[str, set[bool]] = {}
    for test in yaml.safe_load(ALERTS_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    assert [ALERTS.name] == yaml.safe_load(ALERTS_TESTS.read_text())["rule_files"]
    for rule in alert_rules():
        assert cases.get(rule["alert"]) == {True, False}, rule["alert"]


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path: Path):
    # promtool parses expressions only in rule files: each query becomes a recording rule.
    queries = dashboard_queries()
    assert queries
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr} for i, expr in enumerate(queries.values())
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    promtool("check", "rules", str(path))
