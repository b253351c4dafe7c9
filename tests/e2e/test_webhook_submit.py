"""Webhooks at submit, through a real API: a URL InferFlow will not call is refused (422) on
every submit route, and an accepted job's request carries its webhook on the log."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import ServiceFactory
from tests.e2e.harness import Service

pytestmark = pytest.mark.e2e

URN = "urn:inferflow:problem:"
# A public address: accepted at submit, never called (this stack runs no notifier).
PUBLIC = "http://93.184.215.14/hooks/inferflow"
REFUSED = [
    "http://127.0.0.1:8080/hook",
    "http://localhost/hook",
    "http://10.0.0.7/hook",
    "http://[::1]/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/",
]


@pytest.fixture(scope="module")
def api(make_service: ServiceFactory) -> Service:
    """An API alone, with private networks refused (the default)."""
    service = make_service()
    service.start("api")
    return service


def problem_of(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == URN + slug
    return body


@pytest.mark.parametrize("url", REFUSED)
def test_a_webhook_inside_a_private_network_is_refused_at_submit(api: Service, url: str):
    body = problem_of(api.submit("hello", webhook=url), 422, "webhook-refused")
    assert "resolves to" in body["detail"]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"webhook": "ftp://example.com/hook"}, "body.webhook"),
        ({"webhook": "https://u:p@example.com/hook"}, "body.webhook"),
        ({"webhook": PUBLIC, "webhook_events_filter": ["start"]}, "body.webhook_events_filter.0"),
        ({"webhook": PUBLIC, "webhook_events_filter": []}, "body.webhook_events_filter"),
        ({"webhook_events_filter": ["completed"]}, "body"),
    ],
)
def test_a_malformed_webhook_or_filter_is_a_validation_error(api: Service, extra, field):
    body = problem_of(api.submit("hello", **extra), 422, "validation-error")
    assert [error["field"] for error in body["errors"]] == [field]


def test_an_accepted_job_carries_its_webhook_and_filter_on_the_log(api: Service):
    filtered = api.submit("hi", webhook=PUBLIC, webhook_events_filter=["started", "completed"])
    plain = api.submit("hi", webhook=PUBLIC)
    none = api.submit("hi")
    ids = [r.json()["job_id"] for r in (filtered, plain, none) if r.status_code == 202]
    assert len(ids) == 3
    requests = {fields["job_id"]: fields for _, fields in api.log() if fields["job_id"] in ids}
    assert requests[ids[0]]["v"] == "4"
    assert requests[ids[0]]["webhook"] == PUBLIC
    assert requests[ids[0]]["webhook_events_filter"] == "started,completed"
    assert requests[ids[1]]["webhook_events_filter"] == "completed"
    assert requests[ids[2]]["webhook"] == ""


def test_a_batch_rejects_only_its_items_with_a_refused_webhook(api: Service):
    items = [
        {"text": "one", "webhook": PUBLIC},
        {"text": "two", "webhook": "http://192.168.0.1/hook"},
        {"text": "three", "webhook": "gopher://example.com/"},
        {"text": "four"},
    ]
    response = api.http.post("/v1/inference/batch", json={"items": items})
    assert response.status_code == 202, response.text
    answers = response.json()["items"]
    assert [a["status"] for a in answers] == ["accepted", "rejected", "rejected", "accepted"]
    assert answers[1]["error"]["type"] == URN + "webhook-refused"
    assert answers[2]["error"]["type"] == URN + "validation-error"
    logged = {f["job_id"]: f for _, f in api.log() if f["type"] == "JobRequested"}
    assert logged[answers[0]["job_id"]]["webhook"] == PUBLIC


def test_a_batch_file_rejects_only_its_lines_with_a_refused_webhook(api: Service):
    lines = [
        {"custom_id": "a", "text": "one", "webhook": PUBLIC},
        {"custom_id": "b", "text": "two", "webhook": "http://127.0.0.1/"},
    ]
    content = "".join(json.dumps(line) + "\n" for line in lines).encode()
    response = api.http.post(
        "/v1/batches", content=content, headers={"Content-Type": "application/x-ndjson"}
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert body["bad_lines"][0]["line"] == 2
    assert body["bad_lines"][0]["error"]["type"] == URN + "webhook-refused"


def test_private_networks_are_accepted_where_the_setting_allows_them(
    make_service: ServiceFactory,
):
    service = make_service(WEBHOOK_ALLOW_PRIVATE_NETWORKS="true")
    service.start("api")
    assert service.submit("hi", webhook="http://127.0.0.1:9/hook").status_code == 202
    refused = service.submit("hi", webhook="http://169.254.169.254/")
    assert problem_of(refused, 422, "webhook-refused")


def test_a_batch_webhook_that_is_refused_refuses_the_whole_batch(api: Service):
    body = {"items": [{"text": "one"}], "webhook": "http://10.0.0.1/hook"}
    problem_of(api.http.post("/v1/inference/batch", json=body), 422, "webhook-refused")
    body = {"items": [{"text": "one"}], "webhook_events_filter": ["completed"]}
    problem_of(api.http.post("/v1/inference/batch", json=body), 422, "validation-error")
    body = {"items": [{"text": "one"}], "webhook": PUBLIC, "webhook_events_filter": ["ended"]}
    problem_of(api.http.post("/v1/inference/batch", json=body), 422, "validation-error")


def test_a_batch_files_webhook_that_is_refused_refuses_the_file_before_a_line(api: Service):
    content = (json.dumps({"custom_id": "a", "text": "one"}) + "\n").encode()
    headers = {"Content-Type": "application/x-ndjson"}
    refusals = [
        ({"webhook": "http://10.0.0.1/hook"}, "webhook-refused"),
        ({"webhook": "ftp://x/"}, "validation-error"),
        ({"webhook": PUBLIC, "webhook_events_filter": "ended"}, "validation-error"),
        ({"webhook_events_filter": "started"}, "validation-error"),  # without a webhook
    ]
    for params, slug in refusals:
        sent = api.http.post("/v1/batches", params=params, content=content, headers=headers)
        problem_of(sent, 422, slug)
    listed = api.http.get("/v1/jobs").json()["items"]
    assert not [job for job in listed if job.get("custom_id") == "a"]
