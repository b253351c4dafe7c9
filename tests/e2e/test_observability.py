"""Metrics, logs and trace context, through the real processes (two API workers)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from devstack.ports import free_port
from tests.e2e.conftest import ServiceFactory
from tests.e2e.harness import ROOT, Service

pytestmark = pytest.mark.e2e

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class Observed:
    """The service plus where each role serves its metrics."""

    def __init__(self, service: Service, ports: dict[str, int]) -> None:
        self.service = service
        self.urls = {"api": service.url} | {
            name: f"http://127.0.0.1:{port}" for name, port in ports.items()
        }

    def scrape_text(self, role: str) -> str:
        # A new connection per scrape, so either API worker may answer.
        response = httpx.get(f"{self.urls[role]}/metrics", timeout=10)
        assert response.status_code == 200, response.text
        return response.text

    def scrape(self, *roles: str) -> Samples:
        samples: Samples = {}
        for role in roles:
            for family in text_string_to_metric_families(self.scrape_text(role)):
                for s in family.samples:
                    key = (s.name, frozenset(s.labels.items()))
                    samples[key] = samples.get(key, 0.0) + s.value
        return samples


def total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


@pytest.fixture(scope="module")
def observed(make_service: ServiceFactory) -> Observed:
    service = make_service()
    ports = {"projector": free_port(), "consumer-0": free_port(), "consumer-1": free_port()}
    service.start("projector", METRICS_PORT=str(ports["projector"]), LOG_LEVEL="DEBUG")
    for name in ("consumer-0", "consumer-1"):
        # Per-job lines are DEBUG: at thousands of jobs a second, INFO has one line per batch.
        service.start("consumer", name, METRICS_PORT=str(ports[name]), LOG_LEVEL="DEBUG")
    service.start("api", API_WORKERS="2")
    observed = Observed(service, ports)
    for role in ports:  # consumers load the model before they serve
        _eventually(lambda role=role: _answers(observed.urls[role]), timeout_s=30)
    return observed


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/metrics", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


ALL_ROLES = ("api", "consumer-0", "consumer-1", "projector")


def _accepted(response: httpx.Response) -> str:
    assert response.status_code == 202, response.text
    return str(response.json()["job_id"])


def _post(observed: Observed, text: str) -> httpx.Response:
    # A new connection per request, as a scrape: either API worker may answer.
    service = observed.service
    auth = {"Authorization": f"Bearer {service.admin_key}"}
    return httpx.post(f"{service.url}/v1/inference", json={"text": text}, headers=auth, timeout=10)


def _submit(observed: Observed, text: str) -> str:
    return _accepted(_post(observed, text))


def _eventually(check: Callable[[], bool], timeout_s: float = 5) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_metrics_move_as_jobs_flow(observed: Observed):
    before = observed.scrape(*ALL_ROLES)
    texts = ["see you at lunch", "free prize now", "[[transient:1]] hi", "[[permanent]] hi"]
    jobs = [_submit(observed, text) for text in texts]
    refused = _post(observed, "")
    assert refused.status_code == 422
    for job_id in jobs:
        observed.service.wait_terminal(job_id)
    _eventually(
        lambda: (
            total(observed.scrape("projector"), "inferflow_job_end_to_end_seconds_count")
            >= total(before, "inferflow_job_end_to_end_seconds_count") + len(jobs)
        )
    )
    after = observed.scrape(*ALL_ROLES)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    # API: totals pooled over both workers, whichever one answered each request and scrape.
    assert moved("inferflow_jobs_submitted_total") == len(jobs)
    assert moved("inferflow_http_requests_total", route="/v1/inference", status="202") == 4
    assert moved("inferflow_http_problems_total", type="validation-error") == 1
    # Consumers (two processes, summed).
    assert moved("inferflow_consumer_jobs_total", outcome="succeeded") == 3
    assert moved("inferflow_consumer_jobs_total", outcome="failed") == 1
    assert moved("inferflow_consumer_retries_total", error_type="TransientInferenceError") == 1
    assert moved("inferflow_inference_duration_seconds_count") == 5  # one retry: 5 attempts
    assert moved("inferflow_consumer_batch_size_sum") >= len(jobs)
    # Projector and the sampled stream.
    assert moved("inferflow_projector_events_total") == 3 * len(jobs) + 1  # +1: JobRetrying
    assert moved("inferflow_projector_apply_duration_seconds_count") >= 1
    assert moved("inferflow_job_end_to_end_seconds_count", outcome="succeeded") == 3
    assert total(after, "inferflow_projector_checkpoint_timestamp_seconds") > time.time() - 60
    assert total(after, "inferflow_stream_length") >= 3 * len(jobs) + 1
    assert total(after, "inferflow_dead_letters") == 0


def test_api_metrics_are_pooled_across_workers(observed: Observed):
    _submit(observed, "count me")  # a counter with labels has no series before its first job
    text = observed.scrape_text("api")
    # The pooled collector answered, not one worker's own registry (which has _created series).
    assert "inferflow_jobs_submitted_total" in text
    assert "inferflow_jobs_submitted_created" not in text
    counts = {
        total(observed.scrape("api"), "inferflow_http_requests_total", route="/metrics")
        for _ in range(6)
    }
    # Every scrape counts itself, so counts rise by one each time: never two series at once.
    assert len(counts) == 6


def test_consumer_and_projector_serve_their_metrics(observed: Observed):
    for role in ("consumer-0", "consumer-1"):
        assert "inferflow_consumer_jobs_total" in observed.scrape_text(role)
    projector = observed.scrape_text("projector")
    for name in (
        "inferflow_projector_lag_entries",
        "inferflow_projector_lag_seconds",
        'inferflow_group_pending{group="workers",kind="interactive",partition="0"}',
        'inferflow_group_oldest_pending_age_seconds{group="workers",kind="interactive",partition="0"}',
        'inferflow_group_lag{group="workers",kind="interactive",partition="0"}',
    ):
        assert name in projector


def test_logs_are_json_lines_carrying_the_job_and_its_trace(observed: Observed):
    service = observed.service
    response = service.submit("lunch at noon?", headers={"traceparent": TRACEPARENT})
    job_id = _accepted(response)
    service.wait_terminal(job_id)
    _eventually(lambda: _lines_for(service, "projector", job_id) != [])
    finished = [
        line
        for name in ("consumer-0", "consumer-1")
        for line in _lines_for(service, name, job_id)
        if line["message"] == "job finished"
    ]
    assert len(finished) == 1
    assert finished[0]["trace_id"] == TRACE_ID
    assert finished[0]["event"] == "JobSucceeded" and finished[0]["attempt"] == 1
    assert finished[0]["duration_ms"] > 0 and finished[0]["consumer"].startswith("consumer-")
    projected = _lines_for(service, "projector", job_id)
    assert {"JobRequested", "JobStarted", "JobSucceeded"} <= {line["event"] for line in projected}
    assert TRACE_ID in {line.get("trace_id") for line in projected}


def test_the_traceparent_travels_in_the_job_requested_event(observed: Observed, redis_url: str):
    job_id = _accepted(observed.service.submit("hi", headers={"traceparent": TRACEPARENT}))
    untraced = _accepted(observed.service.submit("hi again"))
    events = observed.service.log()
    requested = {f["job_id"]: f for _, f in events if f["type"] == "JobRequested"}
    assert requested[job_id]["traceparent"] == TRACEPARENT
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-00", requested[untraced]["traceparent"])


def test_dashboard_and_alerts_use_only_exported_metrics(observed: Observed):
    deploy = ROOT / "deploy"
    yaml.safe_load((deploy / "prometheus.yml").read_text())
    alerts = yaml.safe_load((deploy / "alerts.yml").read_text())
    dashboard = json.loads((deploy / "grafana/dashboards/inferflow.json").read_text())
    for provisioning in (deploy / "grafana/provisioning").rglob("*.yml"):
        yaml.safe_load(provisioning.read_text())
    exprs = [rule["expr"] for group in alerts["groups"] for rule in group["rules"]]
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in re.findall(r"inferflow_\w+", expr)}
    exported = set()
    for role in ALL_ROLES:
        exported |= set(re.findall(r"inferflow_\w+", observed.scrape_text(role)))
    assert used and used <= exported, sorted(used - exported)


def _lines_for(service: Service, name: str, job_id: str) -> list[dict]:
    """The JSON log lines of a process about one job; fails on any line that is not JSON."""
    path = Path(service.log_dir) / f"{name}.log"
    lines = [json.loads(raw) for raw in path.read_text().splitlines() if raw.strip()]
    return [line for line in lines if line.get("job_id") == job_id]
