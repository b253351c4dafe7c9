"""The seed's behaviours through HTTP against real api, consumer and projector processes."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import Service

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"


def accepted(response) -> str:
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "queued"
    assert response.headers["Location"] == f"/v1/jobs/{body['job_id']}"
    return body["job_id"]


def test_spam_is_classified_with_its_model_version(service: Service):
    job_id = accepted(service.submit("limited time offer, click now"))
    job = service.wait_terminal(job_id)
    assert job["status"] == "succeeded"
    assert job["result"]["label"] == "spam"
    assert job["result"]["model_version"] == "spam-tfidf-lr-v1"
    assert 0.5 < job["result"]["score"] <= 1.0
    assert job["result"]["probabilities"]["spam"] == pytest.approx(job["result"]["score"])
    assert job["error"] is None and job["retry_count"] == 0
    assert job["created_at"] <= job["started_at"] <= job["finished_at"] == job["updated_at"]


def test_ham_is_classified(service: Service):
    job_id = accepted(service.submit("Hi mum, I'll be home for dinner around seven."))
    assert service.wait_terminal(job_id)["result"]["label"] == "ham"


def test_an_explicit_model_version_is_used(service: Service):
    response = service.submit("see you at the meeting", model_version="spam-tfidf-lr-v1")
    assert service.wait_terminal(accepted(response))["model_version"] == "spam-tfidf-lr-v1"


def test_same_idempotency_key_gives_the_same_job(service: Service):
    key = {"Idempotency-Key": f"demo-{uuid.uuid4()}"}
    first = service.submit("limited time offer, click now", headers=key)
    second = service.submit("limited time offer, click now", headers=key)
    assert accepted(first) == accepted(second)
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    other = service.submit("limited time offer, click now", headers={"Idempotency-Key": "x"})
    assert accepted(other) != accepted(first)


def test_an_idempotency_key_reused_for_another_body_is_refused(service: Service):
    key = {"Idempotency-Key": f"demo-{uuid.uuid4()}"}
    accepted(service.submit("first body", headers=key))
    response = service.submit("second body", headers=key)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"].endswith("idempotency-key-reused")


def test_failure_reason_is_stored(service: Service):
    job = service.wait_terminal(accepted(service.submit("[[permanent]] hello")))
    assert job["status"] == "failed"
    assert job["error"] == "injected permanent fault"
    assert job["error_type"] == "InferenceError"
    assert job["result"] is None


def test_retries_are_counted(service: Service):
    job = service.wait_terminal(accepted(service.submit("[[transient:2]] see you soon")))
    assert job["status"] == "succeeded"
    assert job["retry_count"] == 2
    assert job["attempts"] == 3


def test_exhausted_retries_fail_with_the_count(service: Service):
    job = service.wait_terminal(accepted(service.submit("[[transient:9]] see you soon")))
    assert job["status"] == "failed"
    assert job["retry_count"] == 2
    assert job["error"].startswith("gave up after 3 attempts")


def test_a_timeout_fails_the_job_and_workers_keep_serving(service: Service):
    slow = [accepted(service.submit(f"[[sleep_ms:3000]] slow {i}")) for i in range(2)]
    quick = accepted(service.submit("are we still meeting tomorrow?"))
    assert service.wait_terminal(quick, timeout_s=10)["status"] == "succeeded"
    for job_id in slow:
        job = service.wait_terminal(job_id)
        assert job["status"] == "failed"
        assert job["error"] == "inference timed out after 500 ms"


def test_unknown_ids_are_404(service: Service):
    for job_id in (str(uuid.uuid4()), "not-an-id", "0" * 36):
        response = service.http.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["status"] == 404


def test_unknown_model_version_is_422(service: Service):
    response = service.submit("hello", model_version="no-such-model")
    assert response.status_code == 422
    body = response.json()
    assert body["type"].endswith("unknown-model-version")
    assert "spam-tfidf-lr-v1" in body["available"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"text": ""}, 422, "body.text"),
        ({"text": "   \n\t "}, 422, "body.text"),
        ({"text": "x" * 5001}, 422, "body.text"),
        ({}, 422, "body.text"),
        ({"text": 42}, 422, "body.text"),
        ({"text": ["a"]}, 422, "body.text"),
        ({"text": "hi", "colour": "red"}, 422, "body.colour"),
        ({"text": "hi", "model_version": ""}, 422, "body.model_version"),
    ],
)
def test_invalid_bodies_are_problem_details(service: Service, body, status, field):
    response = service.http.post("/v1/inference", json=body)
    assert response.status_code == status
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert field in [error["field"] for error in problem["errors"]]


def test_text_of_exactly_5000_characters_after_strip_is_accepted(service: Service):
    accepted(service.submit("  " + "y" * 5000 + "  "))


def test_malformed_json_is_400(service: Service):
    response = service.http.post(
        "/v1/inference", content=b'{"text": ', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM


def test_invalid_idempotency_key_is_400(service: Service):
    response = service.submit("hello", headers={"Idempotency-Key": "x" * 256})
    assert response.status_code == 400
    assert response.json()["type"].endswith("invalid-idempotency-key")


def test_health_and_ready(service: Service):
    assert service.http.get("/health").json() == {"status": "ok"}
    ready = service.http.get("/ready")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert checks["redis"]["status"] == checks["postgres"]["status"] == "ok"
    assert checks["projector"]["lag_entries"] >= 0


def test_metrics_count_submissions_outcomes_and_latency(service: Service):
    job_id = accepted(service.submit("metrics please"))
    service.wait_terminal(job_id)
    text = service.http.get("/metrics").text
    submitted = {
        sample.labels["tenant"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "inferflow_jobs_submitted_total"
    }
    assert submitted.get("default", 0) >= 1, submitted  # counted by tenant
    assert 'inferflow_jobs{status="succeeded"}' in text
    assert "inferflow_http_request_duration_seconds_bucket{" in text
    assert 'route="/v1/inference"' in text
