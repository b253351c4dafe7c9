"""Rate limits through the real processes: set per tenant by an admin, counted atomically in
Redis across API processes, answered 429 with Retry-After and the RateLimit header fields."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import httpx
import pytest

from devstack.ports import free_port
from tests.e2e.harness import Service

UNKNOWN_JOB = "01a2222c-2f5b-772f-b08b-c988cdc0bb63"


def tenant() -> str:
    return f"limited-{uuid.uuid4().hex[:8]}"


def set_limits(service: Service, name: str, **limits: float) -> dict:
    response = service.http.put(f"/v1/admin/tenants/{name}/limits", json=limits)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(scope="module")
def second_api(service: Service) -> httpx.Client:
    """A second API process of the same stack: limits must hold across processes."""
    port = free_port()
    service.start("api", "api-2", API_PORT=str(port))
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    for _ in range(600):
        try:
            if client.get("/health").status_code == 200:
                break
        except httpx.TransportError:
            pass
        threading.Event().wait(0.05)
    yield client
    client.close()


def test_limits_are_read_and_set_by_an_admin(service: Service):
    name = tenant()
    before = service.http.get(f"/v1/admin/tenants/{name}/limits").json()
    assert before["own"]["requests_per_s"] is None
    assert before["effective"]["requests_per_s"] is None  # the suite's default: no limit
    body = set_limits(service, name, requests_per_s=5, jobs_per_s=100, jobs_burst=300)
    assert body["own"]["requests_per_s"] == 5 and body["own"]["requests_burst"] is None
    assert body["effective"]["requests_burst"] == 5  # one second's worth
    assert body["effective"]["jobs_burst"] == 300
    assert service.http.get(f"/v1/admin/tenants/{name}/limits").json() == body


def test_64_concurrent_requests_against_a_limit_of_10_let_exactly_10_through(
    service: Service, second_api: httpx.Client
):
    name = tenant()
    set_limits(service, name, requests_per_s=0.001, requests_burst=10)
    key = service.new_key(name, "read")
    auth = {"Authorization": f"Bearer {key}"}
    clients = [service.client(key), second_api]
    statuses: list[int] = []
    start = threading.Barrier(64)

    def one(i: int) -> None:
        start.wait()
        client = clients[i % 2]
        statuses.append(client.get(f"/v1/jobs/{UNKNOWN_JOB}", headers=auth).status_code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(64)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    counts = Counter(statuses)
    assert counts == {404: 10, 429: 54}, counts


def test_a_refusal_is_a_429_problem_with_retry_after_and_the_ratelimit_fields(service: Service):
    name = tenant()
    set_limits(service, name, requests_per_s=0.5, requests_burst=2)
    client = service.client_of(name, "read")
    first = client.get(f"/v1/jobs/{UNKNOWN_JOB}")
    assert first.status_code == 404
    # Every answer of a limited route says where the request stands, a 404 too.
    assert first.headers["ratelimit-policy"] == '"requests";q=2;w=4'
    assert first.headers["ratelimit"].startswith('"requests";r=1;t=')
    assert client.get(f"/v1/jobs/{UNKNOWN_JOB}").status_code == 404
    refused = client.get(f"/v1/jobs/{UNKNOWN_JOB}")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["type"] == "urn:inferflow:problem:rate-limited"
    assert body["violated_policies"] == ["requests"]
    assert 1 <= int(refused.headers["retry-after"]) <= 2
    assert refused.headers["ratelimit"].startswith('"requests";r=0;t=')


def test_jobs_are_counted_per_item_and_a_batch_over_the_burst_never_passes(service: Service):
    name = tenant()
    set_limits(service, name, jobs_per_s=0.001, jobs_burst=5)
    client = service.client_of(name)
    items = [{"text": f"item {i}"} for i in range(3)]
    ok = client.post("/v1/inference/batch", json={"items": items})
    assert ok.status_code == 202
    assert ok.headers["ratelimit"].startswith('"jobs";r=2;')
    over = client.post("/v1/inference/batch", json={"items": items})
    assert over.status_code == 429 and "retry-after" in over.headers
    assert client.post("/v1/inference", json={"text": "one"}).status_code == 202
    assert client.post("/v1/inference", json={"text": "two"}).status_code == 202
    assert client.post("/v1/inference", json={"text": "three"}).status_code == 429
    never = client.post("/v1/inference/batch", json={"items": items * 2})
    assert never.status_code == 429
    assert "retry-after" not in never.headers  # no wait helps: it must be split
    assert "smaller parts" in never.json()["detail"]
    # What passed is on the log, what was refused is not.
    requested = [
        f for _, f in service.log() if f.get("type") == "JobRequested" and f.get("tenant") == name
    ]
    assert len(requested) == 5


def test_a_keys_own_limit_holds_within_its_tenants(service: Service):
    name = tenant()
    made = service.http.post(
        "/v1/admin/keys",
        json={"tenant": name, "scopes": ["read"], "requests_per_s": 0.001, "requests_burst": 1},
    )
    limited = service.client(made.json()["key"])
    other = service.client_of(name, "read")
    assert limited.get(f"/v1/jobs/{UNKNOWN_JOB}").status_code == 404
    refused = limited.get(f"/v1/jobs/{UNKNOWN_JOB}")
    assert refused.status_code == 429
    assert refused.json()["violated_policies"] == ["key-requests"]
    assert other.get(f"/v1/jobs/{UNKNOWN_JOB}").status_code == 404  # the tenant has no limit


def test_polls_of_a_job_count_against_the_tenants_limit_and_the_keys(service: Service):
    name = tenant()
    set_limits(service, name, requests_per_s=0.001, requests_burst=3)
    client = service.client_of(name)
    job_id = client.post("/v1/inference", json={"text": "lunch?"}).json()["job_id"]
    service.wait_terminal(job_id)
    first = client.get(f"/v1/jobs/{job_id}")
    assert first.status_code == 200 and first.json()["job_id"] == job_id
    assert first.headers["ratelimit-policy"] == '"requests";q=3;w=3000'
    # The submission took one, this poll another.
    assert first.headers["ratelimit"].startswith('"requests";r=1;t=')
    assert client.get(f"/v1/jobs/{job_id}").headers["ratelimit"].startswith('"requests";r=0;t=')
    assert client.get(f"/v1/jobs/{job_id}").status_code == 429
    # A key's own limit, in a tenant without one: its polls count too.
    made = service.http.post(
        "/v1/admin/keys",
        json={"tenant": tenant(), "scopes": ["read"], "requests_per_s": 0.001, "requests_burst": 1},
    )
    limited = service.client(made.json()["key"])
    assert limited.get(f"/v1/jobs/{UNKNOWN_JOB}").status_code == 404
    assert limited.get(f"/v1/jobs/{job_id}").status_code == 429


def test_tenants_do_not_share_limits(service: Service):
    spent, fresh = tenant(), tenant()
    for name in (spent, fresh):
        set_limits(service, name, requests_per_s=0.001, requests_burst=1)
    a, b = service.client_of(spent, "read"), service.client_of(fresh, "read")
    assert a.get(f"/v1/jobs/{UNKNOWN_JOB}").status_code == 404
    assert a.get(f"/v1/jobs/{UNKNOWN_JOB}").status_code == 429
    assert b.get(f"/v1/jobs/{UNKNOWN_JOB}").status_code == 404


def test_without_limits_no_ratelimit_fields(service: Service):
    client = service.client_of(tenant(), "read")
    response = client.get(f"/v1/jobs/{UNKNOWN_JOB}")
    assert response.status_code == 404
    assert "ratelimit" not in response.headers and "ratelimit-policy" not in response.headers


def test_invalid_limits_are_422(service: Service):
    name = tenant()
    for body in ({"requests_per_s": -1}, {"jobs_burst": 0}, {"requests_per_s": 1e9}, {"x": 1}):
        response = service.http.put(f"/v1/admin/tenants/{name}/limits", json=body)
        assert response.status_code == 422, body
    assert service.http.put("/v1/admin/tenants/Bad!/limits", json={}).status_code == 422


def test_a_tenant_at_its_cap_of_unfinished_jobs_is_refused_until_some_finish(make_service):
    idle = make_service()  # no consumers yet: nothing finishes
    idle.start("projector")
    idle.start("api")
    name = tenant()
    assert idle.http.put(f"/v1/admin/tenants/{name}/limits", json={"max_queued": 3}).is_success
    client = idle.client_of(name)
    assert client.post("/v1/inference", json={"text": "one"}).status_code == 202
    batch = client.post("/v1/inference/batch", json={"items": [{"text": "two"}, {"text": "3"}]})
    assert batch.json()["accepted"] == 2
    full = client.post("/v1/inference", json={"text": "four"})
    assert full.status_code == 429
    assert full.json()["type"] == "urn:inferflow:problem:queue-full"
    assert "retry-after" in full.headers
    items = client.post("/v1/inference/batch", json={"items": [{"text": "5"}, {"text": "6"}]})
    assert [i["error"]["type"] for i in items.json()["items"]] == [
        "urn:inferflow:problem:queue-full"
    ] * 2
    # Another tenant is not held to this one's cap.
    assert idle.client_of(tenant()).post("/v1/inference", json={"text": "x"}).status_code == 202
    idle.start_consumers(1)
    deadline = threading.Event()
    for _ in range(300):
        if client.post("/v1/inference", json={"text": "room again"}).status_code == 202:
            break
        deadline.wait(0.1)
    else:
        raise AssertionError("the cap never made room once the jobs finished")
