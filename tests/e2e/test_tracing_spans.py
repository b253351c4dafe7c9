"""OpenTelemetry spans through the real processes: one trace from the request to the projection."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import ServiceFactory
from tests.e2e.harness import Service

pytestmark = pytest.mark.e2e

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN_ID}-01"
ROLES = ("api", "consumer-0", "projector")


@pytest.fixture(scope="module")
def traced(make_service: ServiceFactory, tmp_path_factory: pytest.TempPathFactory) -> Service:
    spans_dir = tmp_path_factory.mktemp("spans")
    service = make_service(OTEL_TRACES_EXPORTER="file")
    for role in ROLES:
        env = {"OTEL_TRACES_FILE": str(spans_dir / f"{role}.jsonl")}
        if role == "consumer-0":
            service.start("consumer", role, **env)
        else:
            service.start(role, **env)
    service.spans_dir = spans_dir  # type: ignore[attr-defined]
    return service


def _spans(service: Service) -> list[dict]:
    spans_dir: Path = service.spans_dir  # type: ignore[attr-defined]
    found = []
    for role in ROLES:
        path = spans_dir / f"{role}.jsonl"
        if path.exists():
            found += [json.loads(line) for line in path.read_text().splitlines() if line]
    return found


def _named(service: Service, job_id: str, projected: int = 0) -> dict[str, list[dict]]:
    """The job's spans by name, once submit, infer and `projected` project spans are written.

    The consumer ends its span after it appended the outcome, so the job can read as terminal
    a moment before the span is in the file.
    """
    deadline = time.monotonic() + 5
    while True:
        by_name: dict[str, list[dict]] = {}
        for span in _spans(service):
            if span["attributes"].get("inferflow.job_id") == job_id:
                by_name.setdefault(span["name"], []).append(span)
        complete = "inferflow.submit" in by_name and "inferflow.infer" in by_name
        if complete and len(by_name.get("inferflow.project", [])) >= projected:
            return by_name
        assert time.monotonic() < deadline, f"spans of job {job_id} missing: {by_name}"
        time.sleep(0.05)


def test_one_trace_covers_the_request_its_inference_and_its_projection(traced: Service):
    response = traced.submit("lunch at noon?", headers={"traceparent": TRACEPARENT})
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    traced.wait_terminal(job_id, timeout_s=10)
    named = _named(traced, job_id, projected=2)
    (submit,) = named["inferflow.submit"]
    (infer,) = named["inferflow.infer"]
    projected = named["inferflow.project"]
    # The projector applied the request and its outcome, each in a span of the job's trace.
    assert {p["attributes"]["inferflow.event"] for p in projected} == {
        "JobRequested",
        "JobSucceeded",
    }
    for span in (submit, infer, *projected):
        assert span["context"]["trace_id"] == f"0x{TRACE_ID}", span
    # submit is the caller's child; the inference and the projection hang under submit.
    assert submit["parent_id"] == f"0x{CALLER_SPAN_ID}"
    assert infer["parent_id"] == submit["context"]["span_id"]
    assert {p["parent_id"] for p in projected} == {submit["context"]["span_id"]}
    assert submit["resource"]["attributes"]["service.name"] == "inferflow-api"
    assert infer["resource"]["attributes"]["service.name"] == "inferflow-consumer"
    assert projected[0]["resource"]["attributes"]["service.name"] == "inferflow-projector"
    assert infer["attributes"]["inferflow.consumer"] == "consumer-0"
    assert infer["attributes"]["inferflow.attempt"] == 1
    assert infer["attributes"]["inferflow.outcome"] == "succeeded"
    assert infer["status"]["status_code"] == "UNSET"


def test_a_failed_job_marks_its_inference_span_as_an_error(traced: Service):
    response = traced.submit("[[permanent]] hi", headers={"traceparent": TRACEPARENT})
    job_id = response.json()["job_id"]
    assert traced.wait_terminal(job_id, timeout_s=10)["status"] == "failed"
    (infer,) = _named(traced, job_id)["inferflow.infer"]
    assert infer["attributes"]["inferflow.outcome"] == "failed"
    assert infer["status"]["status_code"] == "ERROR"


def test_a_request_without_traceparent_starts_a_sampled_trace(traced: Service):
    job_id = traced.submit("hi there").json()["job_id"]
    traced.wait_terminal(job_id, timeout_s=10)
    named = _named(traced, job_id)
    (submit,) = named["inferflow.submit"]
    (infer,) = named["inferflow.infer"]
    assert submit["parent_id"] is None
    assert infer["context"]["trace_id"] == submit["context"]["trace_id"] != f"0x{TRACE_ID}"
    assert infer["parent_id"] == submit["context"]["span_id"]


def test_no_span_holds_an_api_key(traced: Service):
    job_id = traced.submit("key check", headers={"traceparent": TRACEPARENT}).json()["job_id"]
    traced.wait_terminal(job_id)
    time.sleep(0.5)  # the exporters' last lines
    spans_dir: Path = traced.spans_dir  # type: ignore[attr-defined]
    written = "".join(path.read_text() for path in spans_dir.glob("*.jsonl"))
    assert written and traced.admin_key not in written
    assert traced.admin_key[4:20] not in written and "Bearer" not in written
