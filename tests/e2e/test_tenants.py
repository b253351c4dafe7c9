"""Tenants and keys through the real processes: every route with no key, a bad key, a revoked
key and another tenant's key; scopes; per-tenant idempotency; the tenant on the log and in the
projection; keys kept out of logs; revocation on every API process."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from api.keys import new_key
from devstack.ports import free_port
from tests.e2e.harness import Service

# Every route of a tenant: (method, path template, JSON body). {job} is a job of tenant A.
TENANT_ROUTES = [
    ("POST", "/v1/inference", {"text": "hello"}),
    ("POST", "/v1/inference/batch", {"items": [{"text": "hello"}]}),
    ("GET", "/v1/jobs/{job}", None),
    ("GET", "/v1/jobs/{job}?wait=1", None),
    ("GET", "/v1/jobs/{job}/events", None),
]
ADMIN_ROUTES = [
    ("POST", "/v1/admin/keys", {"tenant": "acme", "scopes": ["read"]}),
    ("GET", "/v1/admin/keys", None),
    ("DELETE", "/v1/admin/keys/key_000000000000", None),
    ("GET", "/v1/admin/tenants/acme/limits", None),
    ("PUT", "/v1/admin/tenants/acme/limits", {"requests_per_s": 5}),
]
ALL_ROUTES = TENANT_ROUTES + ADMIN_ROUTES


def call(client: httpx.Client, method: str, path: str, body: object, job: str) -> httpx.Response:
    return client.request(method, path.format(job=job), json=body)


def unique(tenant: str) -> str:
    return f"{tenant}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def acme_job(service: Service) -> tuple[httpx.Client, str]:
    client = service.client_of("acme", "submit", "read")
    response = client.post("/v1/inference", json={"text": "acme's text"})
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    service.wait_terminal(job_id)
    return client, job_id


def assert_problem(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == f"urn:inferflow:problem:{slug}"


@pytest.mark.parametrize(("method", "path", "body"), ALL_ROUTES)
def test_every_route_without_a_key_is_401_with_a_bearer_challenge(
    service: Service, acme_job, method, path, body
):
    response = call(service.client(None), method, path, body, acme_job[1])
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == 'Bearer realm="inferflow"'


@pytest.mark.parametrize(("method", "path", "body"), ALL_ROUTES)
@pytest.mark.parametrize(
    "key", [new_key(), "ifk_" + "x" * 46, "not-a-key"], ids=["unknown", "bad-checksum", "junk"]
)
def test_every_route_with_a_wrong_key_is_401_invalid_token(
    service: Service, acme_job, method, path, body, key
):
    response = call(service.client(key), method, path, body, acme_job[1])
    assert_problem(response, 401, "unauthenticated")
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


@pytest.mark.parametrize(("method", "path", "body"), ALL_ROUTES)
def test_a_malformed_authorization_header_is_401(service: Service, acme_job, method, path, body):
    client = service.client(None)
    response = client.request(
        method,
        path.format(job=acme_job[1]),
        json=body,
        headers={"Authorization": f"Basic {service.admin_key}"},
    )
    assert_problem(response, 401, "unauthenticated")


@pytest.mark.parametrize(("method", "path", "body"), TENANT_ROUTES[2:])
def test_another_tenants_job_is_404_like_no_job_at_all(
    service: Service, acme_job, method, path, body
):
    globex = service.client_of("globex", "submit", "read")
    theirs = call(globex, method, path, body, acme_job[1])
    nobody = call(globex, method, path, body, "01a2222c-2f5b-772f-b08b-c988cdc0bb63")
    assert_problem(theirs, 404, "http-404")
    assert_problem(nobody, 404, "http-404")
    assert theirs.json()["title"] == nobody.json()["title"]
    # The owner and an admin see it.
    assert call(acme_job[0], method, path, body, acme_job[1]).status_code == 200
    assert call(service.http, method, path, body, acme_job[1]).status_code == 200


def test_a_long_poll_on_another_tenants_job_answers_at_once(service: Service, acme_job):
    globex = service.client_of("globex", "read")
    started = time.monotonic()
    response = globex.get(f"/v1/jobs/{acme_job[1]}", params={"wait": 5})
    assert response.status_code == 404
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
def test_admin_routes_refuse_a_tenants_key_403(service: Service, acme_job, method, path, body):
    response = call(acme_job[0], method, path, body, acme_job[1])
    assert_problem(response, 403, "forbidden")
    assert response.json()["scope"] == "admin"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_scopes_are_enforced(service: Service, acme_job):
    reader = service.client_of("acme", "read")
    submitter = service.client_of("acme", "submit")
    assert_problem(reader.post("/v1/inference", json={"text": "x"}), 403, "forbidden")
    batch = reader.post("/v1/inference/batch", json={"items": [{"text": "x"}]})
    assert_problem(batch, 403, "forbidden")
    assert_problem(submitter.get(f"/v1/jobs/{acme_job[1]}"), 403, "forbidden")
    assert_problem(submitter.get(f"/v1/jobs/{acme_job[1]}/events"), 403, "forbidden")
    assert reader.get(f"/v1/jobs/{acme_job[1]}").status_code == 200
    assert submitter.post("/v1/inference", json={"text": "x"}).status_code == 202


def test_a_forbidden_submission_appends_nothing(service: Service):
    tenant = unique("quiet")
    reader = service.client_of(tenant, "read")

    def requested() -> list[dict[str, str]]:
        # Earlier tests' jobs may still be finishing, so only requests count here.
        return [fields for _, fields in service.log() if fields["type"] == "JobRequested"]

    before = len(requested())
    assert reader.post("/v1/inference", json={"text": "never"}).status_code == 403
    assert reader.post("/v1/inference", json={"text": "x"}, headers={}).status_code == 403
    after = requested()
    assert len(after) == before
    assert not [fields for fields in after if fields.get("tenant") == tenant]


def test_idempotency_keys_are_per_tenant(service: Service):
    key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    a = service.client_of(unique("idem-a"))
    b = service.client_of(unique("idem-b"))
    first = a.post("/v1/inference", json={"text": "same words"}, headers=key)
    other = b.post("/v1/inference", json={"text": "same words"}, headers=key)
    again = a.post("/v1/inference", json={"text": "same words"}, headers=key)
    assert first.status_code == other.status_code == again.status_code == 202
    assert first.json()["job_id"] != other.json()["job_id"]
    assert again.json()["job_id"] == first.json()["job_id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in other.headers
    # The same in batches: each tenant's key names its own job.
    item = {"text": "batched", "idempotency_key": f"item-{uuid.uuid4()}"}
    a_items = a.post("/v1/inference/batch", json={"items": [item]}).json()["items"]
    b_items = b.post("/v1/inference/batch", json={"items": [item]}).json()["items"]
    assert a_items[0]["status"] == b_items[0]["status"] == "accepted"
    assert a_items[0]["job_id"] != b_items[0]["job_id"]


def test_the_tenant_is_on_the_log_and_in_the_projection(service: Service):
    tenant = unique("logged")
    client = service.client_of(tenant)
    single = client.post("/v1/inference", json={"text": "one"}).json()["job_id"]
    batch = client.post("/v1/inference/batch", json={"items": [{"text": "two"}]}).json()
    batched = batch["items"][0]["job_id"]
    for job_id in (single, batched):
        service.wait_terminal(job_id)
        requests = [
            fields
            for _, fields in service.log()
            if fields.get("job_id") == job_id and fields.get("type") == "JobRequested"
        ]
        assert len(requests) == 1
        assert requests[0]["tenant"] == tenant and requests[0]["v"] == "4"
        events = client.get(f"/v1/jobs/{job_id}/events").json()["events"]
        assert events[0]["type"] == "JobRequested"
    # The projection's row carries it too: a job read back after projection is visible to
    # its tenant only.
    assert client.get(f"/v1/jobs/{single}").json()["status"] in ("succeeded", "failed")
    assert service.client_of(unique("nosy")).get(f"/v1/jobs/{single}").status_code == 404


def test_admin_makes_lists_and_revokes_keys(service: Service):
    tenant = unique("keys")
    made = service.http.post(
        "/v1/admin/keys", json={"tenant": tenant, "scopes": ["submit", "read"], "name": "ci"}
    )
    assert made.status_code == 201, made.text
    body = made.json()
    key, key_id = body["key"], body["key_id"]
    assert key.startswith("ifk_") and body["hint"].endswith(key[-4:])
    assert body["tenant"] == tenant and body["scopes"] == ["read", "submit"]
    client = service.client(key)
    assert client.post("/v1/inference", json={"text": "with my key"}).status_code == 202

    listed = service.http.get("/v1/admin/keys", params={"tenant": tenant}).json()["keys"]
    assert [k["key_id"] for k in listed] == [key_id]
    assert "key" not in listed[0] and key not in service.http.get("/v1/admin/keys").text

    assert service.http.delete(f"/v1/admin/keys/{key_id}").status_code == 204
    assert service.http.delete(f"/v1/admin/keys/{key_id}").status_code == 204  # harmless
    assert_problem(client.post("/v1/inference", json={"text": "x"}), 401, "unauthenticated")
    listed = service.http.get("/v1/admin/keys", params={"tenant": tenant}).json()["keys"]
    assert listed[0]["revoked_at"] is not None
    assert_problem(service.http.delete("/v1/admin/keys/key_ffffffffffff"), 404, "http-404")


@pytest.mark.parametrize(
    "body",
    [
        {"tenant": "Bad Name", "scopes": ["read"]},
        {"tenant": "acme", "scopes": []},
        {"tenant": "acme", "scopes": ["write"]},
        {"tenant": "acme", "scopes": ["read"], "extra": 1},
        {"tenant": "acme", "scopes": ["read"], "requests_per_s": 0},
        {"tenant": "acme", "scopes": ["read"], "name": "nul\u0000in the name"},
    ],
)
def test_an_invalid_key_request_is_422(service: Service, body):
    assert_problem(service.http.post("/v1/admin/keys", json=body), 422, "validation-error")


def test_keys_never_reach_the_logs(service: Service, acme_job):
    made = service.http.post("/v1/admin/keys", json={"tenant": "acme", "scopes": ["read"]})
    key = made.json()["key"]
    client = service.client(key)
    client.get(f"/v1/jobs/{acme_job[1]}")
    client.get("/v1/jobs/not-a-job")
    service.client(key[:-1] + "Z").get(f"/v1/jobs/{acme_job[1]}")
    for name in service.procs:
        text = (service.log_dir / f"{name}.log").read_text(errors="replace")
        assert key not in text and service.admin_key not in text
        assert key[4:20] not in text


def test_a_revoked_key_stops_working_on_every_api_process(service: Service, acme_job):
    port = free_port()
    service.start("api", "api-2", API_PORT=str(port))
    other = service.client(None)
    other.base_url = httpx.URL(f"http://127.0.0.1:{port}")
    _eventually(lambda: _answers(other), 30)
    made = service.http.post("/v1/admin/keys", json={"tenant": "acme", "scopes": ["read"]})
    key_id, key = made.json()["key_id"], made.json()["key"]
    path = f"/v1/jobs/{acme_job[1]}"
    auth = {"Authorization": f"Bearer {key}"}
    # Both processes know the key (and have read it, so it sits in their caches).
    assert other.get(path, headers=auth).status_code == 200
    assert service.client(key).get(path).status_code == 200
    revoked_at = time.monotonic()
    assert service.http.delete(f"/v1/admin/keys/{key_id}").status_code == 204
    assert service.client(key).get(path).status_code == 401  # the revoking process: at once
    _eventually(lambda: other.get(path, headers=auth).status_code == 401, 10)
    # Within AUTH_CACHE_MS (2 s) and a little scheduling.
    assert time.monotonic() - revoked_at < 4
    service.stop("api-2")


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/health").status_code == 200
    except httpx.TransportError:
        return False


def _eventually(check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.05)


def test_with_auth_off_every_request_acts_as_the_default_tenants_admin(make_service):
    trusted = make_service(AUTH_ENABLED="false")
    trusted.start("api")
    anyone = trusted.client(None)
    response = anyone.post("/v1/inference", json={"text": "no key needed"})
    assert response.status_code == 202
    job_id = response.json()["job_id"]
    assert anyone.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
    assert anyone.get("/v1/admin/keys").status_code == 200
    # Any Authorization is ignored, not judged.
    assert trusted.client("junk").get(f"/v1/jobs/{job_id}").status_code == 200
    requested = [f for _, f in trusted.log() if f.get("job_id") == job_id]
    assert requested[0]["tenant"] == "default"
    assert "AUTH_ENABLED is off" in (trusted.log_dir / "api.log").read_text()
