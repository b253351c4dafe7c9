"""Prometheus itself (the prometheus binary, no container) scraping a real stack with the jobs of
deploy/prometheus.yml and the rules of deploy/alerts.yml: every target is up, every query of the
Grafana dashboard returns data, and an alert fires once its condition holds."""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from devstack.embedded import spawn
from devstack.ports import free_port
from eventlog.deadletters import dead_letter_fields
from tests.e2e.conftest import ServiceFactory
from tests.e2e.harness import Service
from tests.integration.test_deploy_files import (
    ALERTS,
    PROMETHEUS_CONFIG,
    alert_rules,
    dashboard_queries,
    metric_names,
)

PROMETHEUS = shutil.which("prometheus")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        PROMETHEUS is None,
        reason="prometheus binary not found (Debian/Ubuntu: apt-get install prometheus)",
    ),
]

CONSUMERS = ("consumer-0", "consumer-1")
# An outcome of each kind and a retry: series with labels appear only once counted.
JOB_TEXTS = ("see you at lunch", "free prize now", "[[transient:1]] hi", "[[permanent]] hi")
JOBS = len(JOB_TEXTS)
READY_TIMEOUT_S = 30.0
DATA_TIMEOUT_S = 30.0  # consumers load their model before they serve metrics
POLL_S = 0.25
STOP_TIMEOUT_S = 10.0
T = TypeVar("T")


@dataclass
class Monitored:
    service: Service
    prometheus: httpx.Client
    targets: dict[str, list[str]]  # by job name

    def api(self, path: str, **params: str) -> Any:
        response = self.prometheus.get(f"/api/v1/{path}", params=params)
        body = response.json()
        # A query Prometheus refuses is wrong now and later: fail at once, do not poll.
        assert response.status_code == 200 and body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expr)["result"])

    def alerts(self, name: str) -> list[dict[str, Any]]:
        return [a for a in self.api("alerts")["alerts"] if a["labels"]["alertname"] == name]


def _eventually(
    probe: Callable[[], T | None], what: str | Callable[[], str], timeout_s: float = DATA_TIMEOUT_S
) -> T:
    """What ``probe`` returns once it is neither None nor False; fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while (found := probe()) is None or found is False:
        if time.monotonic() >= deadline:
            pytest.fail(f"{what if isinstance(what, str) else what()}: not within {timeout_s} s")
        time.sleep(POLL_S)
    return found


def scrape_config(targets: dict[str, list[str]]) -> dict[str, Any]:
    """deploy/prometheus.yml with each job's discovery replaced by the local targets, scraping
    and evaluating every second."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    jobs = config["scrape_configs"]
    # The deployed jobs must be the roles: a job renamed or gone would go unscraped.
    assert {job["job_name"] for job in jobs} == set(targets)
    for job in jobs:
        for key in [k for k in job if k.endswith("_sd_configs") or k == "static_configs"]:
            del job[key]
        job["static_configs"] = [{"targets": targets[job["job_name"]]}]
    config["global"] = {**config.get("global", {}), "scrape_interval": "1s"}
    config["global"]["evaluation_interval"] = "1s"
    config["rule_files"] = [ALERTS.name]
    return config


def immediate_alerts() -> dict[str, Any]:
    """deploy/alerts.yml with no `for:` wait, so an alert fires at its first true evaluation
    (the waits themselves are proven by deploy/alerts.test.yml)."""
    alerts = yaml.safe_load(ALERTS.read_text())
    for group in alerts["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = "0s"
    return alerts


@pytest.fixture(scope="module")
def stack(make_service: ServiceFactory) -> tuple[Service, dict[str, list[str]]]:
    service = make_service()
    ports = {name: free_port() for name in ("projector", "notifier", *CONSUMERS)}
    service.start("projector", METRICS_PORT=str(ports["projector"]))
    for name in CONSUMERS:
        service.start("consumer", name, METRICS_PORT=str(ports[name]))
    service.start("notifier", METRICS_PORT=str(ports["notifier"]))
    service.start("api")  # serves /metrics on its own port
    targets = {
        "api": [f"127.0.0.1:{service.port}"],
        "projector": [f"127.0.0.1:{ports['projector']}"],
        "consumer": [f"127.0.0.1:{ports[name]}" for name in CONSUMERS],
        "notifier": [f"127.0.0.1:{ports['notifier']}"],
    }
    return service, targets


@pytest.fixture(scope="module")
def monitored(
    stack: tuple[Service, dict[str, list[str]]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Monitored]:
    assert PROMETHEUS is not None
    service, targets = stack
    directory = tmp_path_factory.mktemp("prometheus")
    config = directory / "prometheus.yml"
    config.write_text(yaml.safe_dump(scrape_config(targets)))
    (directory / ALERTS.name).write_text(yaml.safe_dump(immediate_alerts()))
    address = f"127.0.0.1:{free_port()}"
    log_path = directory / "prometheus.log"
    argv = [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={directory / 'data'}",
        f"--web.listen-address={address}",
    ]
    with log_path.open("ab") as log:
        proc = spawn(argv, log)
    # Straight to 127.0.0.1: a proxy from the environment must not answer for Prometheus.
    client = httpx.Client(base_url=f"http://{address}", timeout=10, trust_env=False)
    try:
        _eventually(lambda: _ready(client, proc, log_path), "prometheus ready", READY_TIMEOUT_S)
        monitored = Monitored(service, client, targets)
        _load(monitored)
        yield monitored
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ready(client: httpx.Client, proc: subprocess.Popen[bytes], log_path: Path) -> bool:
    if (code := proc.poll()) is not None:
        pytest.fail(f"prometheus exited with code {code}:\n{log_path.read_text()[-4000:]}")
    try:
        return client.get("/-/ready").status_code == 200
    except httpx.TransportError:
        return False


def _load(monitored: Monitored) -> None:
    """Two waves of jobs (and a refused request each) with a scrape between them, so that every
    series the dashboard draws moves while Prometheus watches: rate() sees a series move only
    from its second scraped value, a series with labels appears only once counted, and a
    consumer serves its metrics only once its model is loaded."""
    _eventually(lambda: _every_target_up(monitored), lambda: f"targets {_health(monitored)}")
    _wave(monitored.service)
    _eventually(
        lambda: _has_data(
            monitored.query(f"sum(inferflow_job_end_to_end_seconds_count) >= {JOBS}")
        ),
        "the first wave scraped",
    )
    _wave(monitored.service)


def _wave(service: Service) -> None:
    jobs = []
    for text in JOB_TEXTS:
        response = service.submit(text)
        assert response.status_code == 202, response.text
        jobs.append(response.json()["job_id"])
    assert service.submit("").status_code == 422
    for job_id in jobs:
        service.wait_terminal(job_id)


def _health(monitored: Monitored) -> dict[tuple[str, str], str]:
    active = monitored.api("targets", state="active")["activeTargets"]
    return {(t["labels"]["job"], t["labels"]["instance"]): t["health"] for t in active}


def _every_target_up(monitored: Monitored) -> bool:
    expected = {(job, t) for job, targets in monitored.targets.items() for t in targets}
    health = _health(monitored)
    return set(health) == expected and set(health.values()) == {"up"}


def _has_data(result: list[dict[str, Any]]) -> bool:
    # A histogram whose buckets did not move gives NaN: a series, but nothing to draw.
    return any(math.isfinite(float(sample["value"][1])) for sample in result)


def test_prometheus_scrapes_every_role(monitored: Monitored):
    expected = {(job, t) for job, targets in monitored.targets.items() for t in targets}

    def up() -> dict[tuple[str, str], str]:
        # The `up` series too: what an alert or a panel on targets would read.
        return {
            (s["metric"]["job"], s["metric"]["instance"]): s["value"][1]
            for s in monitored.query("up")
        }

    # Polled: one scrape slower than the 1 s timeout on a busy machine marks a target down.
    _eventually(
        lambda: _every_target_up(monitored) and up() == dict.fromkeys(expected, "1"),
        lambda: f"targets {_health(monitored)}, up {up()}",
    )


def test_every_dashboard_query_returns_data(monitored: Monitored):
    waiting = dashboard_queries()
    deadline = time.monotonic() + DATA_TIMEOUT_S
    # Rates need two scrapes of a series: poll them all until each has a value.
    while waiting and time.monotonic() < deadline:
        waiting = {k: e for k, e in waiting.items() if not _has_data(monitored.query(e))}
        if waiting:
            time.sleep(POLL_S)
    assert not waiting, f"no data for {waiting}"


def test_the_alert_rules_evaluate_on_series_of_every_metric_they_use(monitored: Monitored):
    rules = alert_rules()
    for name in sorted(metric_names(rule["expr"] for rule in rules)):
        _eventually(lambda name=name: monitored.query(name) != [], f"series of {name}")

    def evaluated() -> dict[str, dict[str, Any]] | None:
        groups = monitored.api("rules", type="alert")["groups"]
        loaded = {rule["name"]: rule for group in groups for rule in group["rules"]}
        return loaded if all(r["health"] != "unknown" for r in loaded.values()) else None

    loaded = _eventually(evaluated, "every alert rule evaluated")
    assert set(loaded) == {rule["alert"] for rule in rules}
    assert {name: (r["health"], r.get("lastError")) for name, r in loaded.items()} == {
        name: ("ok", None) for name in loaded
    }


def test_the_dead_letters_alert_fires_once_a_request_is_dead_lettered(
    monitored: Monitored, redis_url: str
):
    alert = "InferFlowDeadLetters"
    _eventually(lambda: _has_data(monitored.query("inferflow_dead_letters == 0")), "no letters")
    assert monitored.alerts(alert) == []
    client = monitored.service.redis()
    try:
        fields = {"type": "JobRequested", "job_id": "dead-letter-test", "text": "hi"}
        letter = dead_letter_fields("1-0", fields, 5, "delivered too often", datetime.now(UTC))
        client.xadd(monitored.service.names.dead_letters(0), letter)
    finally:
        client.close()

    def firing() -> list[dict[str, Any]] | None:
        alerts = [a for a in monitored.alerts(alert) if a["state"] == "firing"]
        return alerts or None

    (fired,) = _eventually(firing, f"{alert} firing")
    assert fired["labels"]["severity"] == "warning"
    assert fired["labels"]["job"] == "projector"
    assert fired["annotations"]["summary"].startswith("1 requests in the dead-letter stream")
