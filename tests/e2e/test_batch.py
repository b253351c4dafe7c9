"""POST /v1/inference/batch through HTTP against real api, consumer and projector processes."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.schemas import BatchAccepted
from tests.e2e.conftest import ServiceFactory
from tests.e2e.harness import Service

pytestmark = pytest.mark.e2e

PATH = "/v1/inference/batch"
PROBLEM = "application/problem+json"
JSON = {"Content-Type": "application/json"}
URN = "urn:inferflow:problem:"
MAX_ITEMS = 1000
BATCH_MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_BODY_BYTES = 65536


def post(service: Service, items: Any, **extra: Any) -> httpx.Response:
    return service.http.post(PATH, json={"items": items, **extra}, timeout=60)


def answered(response: httpx.Response) -> dict[str, Any]:
    """The 202 body, checked against its published schema and its own counts."""
    assert response.status_code == 202, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    BatchAccepted.model_validate(body)
    statuses = [item["status"] for item in body["items"]]
    for status in ("accepted", "replayed", "rejected"):
        assert body[status] == statuses.count(status)
    assert [item["index"] for item in body["items"]] == list(range(len(statuses)))
    return body


def is_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == URN + slug and body["status"] == status
    return body


def requested(service: Service) -> list[dict[str, str]]:
    return [fields for _, fields in service.log() if fields["type"] == "JobRequested"]


def key() -> str:
    return f"batch-{uuid.uuid4()}"


def test_a_mixed_batch_is_judged_item_by_item_and_the_valid_ones_run(service: Service):
    items = [
        {"text": "limited time offer, click now", "custom_id": "spam-1"},
        {"text": "   ", "custom_id": "blank"},
        {"text": "hello", "model_version": "no-such-model", "custom_id": "unknown"},
        {"text": "hello", "idempotency_key": "tab\tinside"},
        {"text": "hello", "colour": "red"},
        42,
        {"text": "Hi mum, I'll be home for dinner around seven.", "custom_id": "ham-1"},
        {"text": "[[permanent]] fails on purpose", "model_version": "spam-tfidf-lr-v1"},
    ]
    body = answered(post(service, items))
    outcome = [(item["status"], item["custom_id"]) for item in body["items"]]
    assert outcome == [
        ("accepted", "spam-1"),
        ("rejected", "blank"),
        ("rejected", "unknown"),
        ("rejected", None),
        ("rejected", None),
        ("rejected", None),
        ("accepted", "ham-1"),
        ("accepted", None),
    ]
    errors = {item["index"]: item["error"] for item in body["items"] if item["error"]}
    assert errors[1]["type"] == URN + "validation-error"
    assert errors[1]["errors"][0]["field"] == "body.items.1.text"
    assert errors[2]["type"] == URN + "unknown-model-version"
    assert "spam-tfidf-lr-v1" in errors[2]["available"]
    assert errors[3]["errors"][0]["field"] == "body.items.3.idempotency_key"
    assert errors[4]["errors"][0]["field"] == "body.items.4.colour"
    assert errors[5]["errors"][0]["field"] == "body.items.5"
    assert all(item["job_id"] is None for item in body["items"] if item["error"])

    jobs = [service.wait_terminal(item["job_id"]) for item in body["items"] if item["job_id"]]
    assert [job["status"] for job in jobs] == ["succeeded", "succeeded", "failed"]
    assert [job["result"]["label"] for job in jobs[:2]] == ["spam", "ham"]


def test_job_ids_come_back_in_the_order_of_the_items_and_of_the_log(make_service):
    service = make_service()  # its own stream: every JobRequested in it is from this batch
    service.start("api")
    texts = [f"text number {i}" for i in range(50)]
    body = answered(post(service, [{"text": f"  {t}  ", "custom_id": t} for t in texts]))
    job_ids = [item["job_id"] for item in body["items"]]
    assert [item["custom_id"] for item in body["items"]] == texts
    events = requested(service)
    assert [e["job_id"] for e in events] == job_ids
    assert [e["text"] for e in events] == texts  # stored stripped, as one at a time
    # Kept with the job, with the batch it came in (GET /v1/batches/{id}/results).
    assert [e["custom_id"] for e in events] == texts
    assert {e["batch_id"] for e in events} == {body["batch_id"]}
    assert len({e["traceparent"] for e in events}) == 1  # one request, one trace


def test_a_batch_sent_again_replays_its_jobs(service: Service):
    items = [{"text": f"replay me {i}", "idempotency_key": key()} for i in range(3)]
    first = answered(post(service, items))
    again = answered(post(service, items))
    assert (first["accepted"], again["replayed"], again["accepted"]) == (3, 3, 0)
    assert [i["job_id"] for i in again["items"]] == [i["job_id"] for i in first["items"]]
    changed = [{**items[0], "text": "something else"}]
    [reused] = answered(post(service, changed))["items"]
    assert reused["status"] == "rejected" and reused["job_id"] is None
    assert reused["error"]["type"] == URN + "idempotency-key-reused"


def test_a_key_repeated_in_one_batch_names_its_first_job(service: Service):
    shared = key()
    items = [
        {"text": "first", "idempotency_key": shared},
        {"text": "  first ", "idempotency_key": shared},  # the same request once stripped
        {"text": "second", "idempotency_key": shared},
    ]
    body = answered(post(service, items))
    assert [item["status"] for item in body["items"]] == ["accepted", "replayed", "rejected"]
    assert body["items"][1]["job_id"] == body["items"][0]["job_id"]
    assert body["items"][2]["error"]["type"] == URN + "idempotency-key-reused"


def test_keys_are_shared_with_the_single_endpoint(service: Service):
    shared = key()
    single = service.submit("one key, two doors", headers={"Idempotency-Key": shared})
    assert single.status_code == 202
    items = [{"text": "one key, two doors", "idempotency_key": shared}]
    [item] = answered(post(service, items))["items"]
    assert (item["status"], item["job_id"]) == ("replayed", single.json()["job_id"])


def test_a_thousand_items_are_accepted_and_one_more_is_422(service: Service):
    items = [{"text": f"bulk item {i}", "custom_id": f"c{i}"} for i in range(MAX_ITEMS)]
    body = answered(post(service, items))
    assert body["accepted"] == MAX_ITEMS
    assert len({item["job_id"] for item in body["items"]}) == MAX_ITEMS
    assert service.wait_terminal(body["items"][-1]["job_id"], timeout_s=60)["status"] in (
        "succeeded",
        "failed",
    )
    problem = is_problem(post(service, [*items, {"text": "one more"}]), 422, "validation-error")
    assert problem["errors"] == [
        {
            "field": "body.items",
            "message": f"List should have at most {MAX_ITEMS} items, not {MAX_ITEMS + 1}",
            "type": "too_long",
        }
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"items": []}, "body.items"),
        ({}, "body.items"),
        ({"items": {"text": "hi"}}, "body.items"),
        ({"items": [{"text": "hi"}], "extra": 1}, "body.extra"),
        ([{"text": "hi"}], "body"),
    ],
    ids=["empty", "missing", "not-a-list", "unknown-field", "bare-list"],
)
def test_an_envelope_that_is_not_valid_is_422(service: Service, body: Any, field: str):
    response = service.http.post(PATH, json=body)
    problem = is_problem(response, 422, "validation-error")
    assert field in [error["field"] for error in problem["errors"]]


def test_the_json_gate_applies(service: Service):
    is_problem(service.http.post(PATH, content=b'{"items": ', headers=JSON), 400, "malformed-json")
    text = {"Content-Type": "text/plain"}
    is_problem(service.http.post(PATH, content=b"{}", headers=text), 415, "unsupported-media-type")


def test_custom_ids_are_echoed_when_valid(service: Service):
    items = [
        {"text": "a", "custom_id": "x" * 255},
        {"text": "b", "custom_id": ""},
        {"text": "", "custom_id": "kept-though-invalid"},
        {"text": "c", "custom_id": "x" * 256},
    ]
    body = answered(post(service, items))
    assert [i["custom_id"] for i in body["items"]] == ["x" * 255, None, "kept-though-invalid", None]
    assert [i["status"] for i in body["items"]] == ["accepted", "rejected", "rejected", "rejected"]
    assert body["items"][1]["error"]["errors"][0]["field"] == "body.items.1.custom_id"


def test_the_batch_has_its_own_body_limit_and_the_single_one_is_unchanged(service: Service):
    def sized(n: int) -> bytes:
        prefix, suffix = b'{"items": [{"text": "x"}], "pad": "', b'"}'
        return prefix + b" " * (n - len(prefix) - len(suffix)) + suffix

    at_limit = service.http.post(PATH, content=sized(BATCH_MAX_BODY_BYTES), headers=JSON)
    assert at_limit.status_code == 422, at_limit.text  # read and parsed: "pad" is unknown
    over = service.http.post(PATH, content=sized(BATCH_MAX_BODY_BYTES + 1), headers=JSON)
    assert str(BATCH_MAX_BODY_BYTES) in is_problem(over, 413, "content-too-large")["detail"]
    single = service.http.post("/v1/inference", content=sized(MAX_BODY_BYTES + 1), headers=JSON)
    assert str(MAX_BODY_BYTES) in is_problem(single, 413, "content-too-large")["detail"]


def test_large_texts_fill_a_batch_within_its_body_limit(service: Service):
    items = [{"text": f"{i} " + "y" * 4990} for i in range(MAX_ITEMS)]
    assert len(json.dumps({"items": items})) > MAX_ITEMS * 5000
    assert answered(post(service, items))["accepted"] == MAX_ITEMS


def test_metrics_count_the_batch(service: Service):
    def counter(name: str) -> float:
        # Summed over its labels: the counts are per tenant.
        families = text_string_to_metric_families(service.http.get("/metrics").text)
        return sum(s.value for family in families for s in family.samples if s.name == name)

    submitted = counter("inferflow_jobs_submitted_total")
    replays = counter("inferflow_idempotent_replays_total")
    items = [{"text": "count me", "idempotency_key": key()}, {"text": "and me"}]
    answered(post(service, items))
    answered(post(service, items[:1]))
    assert counter("inferflow_jobs_submitted_total") - submitted == 2
    assert counter("inferflow_idempotent_replays_total") - replays == 1


def test_redis_down_is_503_for_the_whole_batch(make_service: ServiceFactory):
    api = make_service(redis_url="redis://127.0.0.1:9/0", DEPENDENCY_TIMEOUT_MS="500")
    api.start("api")
    refused = post(api, [{"text": "lost"}, {"text": ""}])
    is_problem(refused, 503, "dependency-unavailable")
    assert refused.headers["Retry-After"]
    # A batch with no valid item needs no Redis: its answer is all rejections.
    assert answered(post(api, [{"text": ""}]))["rejected"] == 1
