"""The routes the console reads, over HTTP against the real processes: GET /v1/stats (a tenant's
jobs only for a tenant's key, the log's shape for an admin's) and the dead letters under
/v1/admin/dead-letters (listed and redriven, one or all; admin keys only), each with no key, a
wrong key and another tenant's key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

import httpx
import pytest

from api.console.session import CSRF_FIELD, csrf_token
from api.keys import new_key
from domain.events import JobRequested, decode
from domain.ids import partition_of
from eventlog.deadletters import dead_letter_fields
from eventlog.lanes import Lane
from tests.e2e.conftest import ServiceFactory
from tests.e2e.harness import Service

pytestmark = pytest.mark.e2e

LETTERS = "/v1/admin/dead-letters"
ROUTES = [
    ("GET", "/v1/stats"),
    ("GET", LETTERS),
    ("POST", f"{LETTERS}/redrive"),
    ("POST", f"{LETTERS}/0/1795870659202-0/redrive"),
]
ADMIN_ROUTES = ROUTES[1:]


@pytest.fixture(scope="module")
def service(make_service: ServiceFactory) -> Service:
    running = make_service()
    running.start_all(consumers=1)
    return running


def problem(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == f"urn:inferflow:problem:{slug}"


def finished(client: httpx.Client, service: Service, text: str) -> str:
    response = client.post("/v1/inference", json={"text": text})
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    service.wait_terminal(job_id)
    return job_id


def bury(service: Service, job_id: str, reason: str = "delivered 6 times") -> str:
    """Set the job's request aside as a dead letter, as a consumer does after too many
    deliveries; its ref."""
    partition = partition_of(job_id)
    [(entry_id, fields)] = [
        (entry_id, fields)
        for entry_id, fields in service.log()
        if fields.get("job_id") == job_id and fields["type"] == "JobRequested"
    ]
    lane = Lane.of(cast(JobRequested, decode(fields))).name
    letter = dead_letter_fields(entry_id, fields, 6, reason, datetime.now(UTC), lane)
    client = service.redis()
    try:
        letter_id = client.xadd(service.names.dead_letters(partition), letter)
    finally:
        client.close()
    return f"{partition}/{letter_id}"


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_no_key_is_401(service: Service, method: str, path: str) -> None:
    problem(service.client(None).request(method, path), 401, "unauthenticated")


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_wrong_key_is_401(service: Service, method: str, path: str) -> None:
    problem(service.client(new_key()).request(method, path), 401, "unauthenticated")


@pytest.mark.parametrize(("method", "path"), ADMIN_ROUTES)
def test_a_tenants_key_is_403_on_the_dead_letters(service: Service, method, path) -> None:
    tenant = service.client_of("acme", "submit", "read", "cancel")
    problem(tenant.request(method, path), 403, "forbidden")


def test_stats_count_the_callers_tenant_only_and_the_log_for_an_admin(service: Service) -> None:
    acme = service.client_of("acme")
    globex = service.client_of("globex")
    finished(acme, service, "acme's first note")
    finished(acme, service, "acme's second note")
    finished(globex, service, "globex's note")

    mine = acme.get("/v1/stats", params={"minutes": 5})
    assert mine.status_code == 200, mine.text
    body = mine.json()
    assert body["tenant"] == "acme"
    assert body["ended"]["succeeded"] == 2 and body["partitions"] is None
    assert sum(b["ended"]["succeeded"] for b in body["buckets"]) == 2
    assert len(body["buckets"]) == 30 and body["window_s"] == 300
    assert [m["ended"]["succeeded"] for m in body["models"]] == [2]
    assert body["latency_ms"]["p50"] > 0

    theirs = globex.get("/v1/stats").json()
    assert theirs["tenant"] == "globex" and theirs["ended"]["succeeded"] == 1

    everyone = service.http.get("/v1/stats").json()
    assert everyone["tenant"] is None and everyone["ended"]["succeeded"] >= 3
    partitions = everyone["partitions"]
    assert [p["partition"] for p in partitions] == list(range(service.partitions))
    assert sum(p["stream_length"] for p in partitions) >= 3
    assert all(p["lag"] == 0 for p in partitions)


def test_stats_refuse_a_window_out_of_range(service: Service) -> None:
    problem(service.http.get("/v1/stats", params={"minutes": 61}), 422, "validation-error")


def test_a_dead_letter_is_listed_and_redriven_once(service: Service) -> None:
    acme = service.client_of("acme")
    job_id = finished(acme, service, "acme's note that died")
    ref = bury(service, job_id)

    listed = service.http.get(LETTERS)
    assert listed.status_code == 200, listed.text
    [letter] = [item for item in listed.json()["items"] if item["ref"] == ref]
    assert letter["job_id"] == job_id and letter["tenant"] == "acme"
    assert letter["text"] == "acme's note that died" and letter["deliveries"] == 6

    redriven = service.http.post(f"{LETTERS}/{ref}/redrive")
    assert redriven.status_code == 200, redriven.text
    [done] = redriven.json()["redriven"]
    assert done["ref"] == ref and done["job_id"] == job_id and done["new_job_id"] != job_id
    # The new job is acme's: acme reads it, and it runs.
    assert service.wait_terminal(done["new_job_id"])["status"] == "succeeded"
    assert acme.get(f"/v1/jobs/{done['new_job_id']}").status_code == 200
    assert ref not in [item["ref"] for item in service.http.get(LETTERS).json()["items"]]
    problem(service.http.post(f"{LETTERS}/{ref}/redrive"), 404, "http-404")


def test_redriving_all_takes_every_letter(service: Service) -> None:
    refs = {bury(service, finished(service.http, service, f"note {i}")) for i in range(2)}
    answer = service.http.post(f"{LETTERS}/redrive")
    assert answer.status_code == 200, answer.text
    assert refs <= {done["ref"] for done in answer.json()["redriven"]}
    assert service.http.get(LETTERS).json()["items"] == []


def test_a_ref_that_is_no_entry_id_is_refused(service: Service) -> None:
    problem(service.http.post(f"{LETTERS}/0/not-an-id/redrive"), 422, "validation-error")


def test_without_auth_the_console_needs_no_sign_in_and_forms_still_need_their_origin(
    make_service: ServiceFactory,
) -> None:
    trusted = make_service(AUTH_ENABLED="false")
    trusted.start_all(consumers=0)  # no consumer: a job stays queued
    browser = httpx.Client(base_url=trusted.url, timeout=10)
    try:
        assert browser.get("/console/sign-in").headers["location"] == "/console"
        overview = browser.get("/console")
        assert overview.status_code == 200 and "every tenant's jobs" in overview.text
        job_id = trusted.submit("a note").json()["job_id"]
        # From another site: refused, though no key is needed.
        cancel = f"/console/jobs/{job_id}/cancel"
        foreign = browser.post(cancel, headers={"Origin": "https://elsewhere.example"})
        assert foreign.status_code == 403
        assert trusted.http.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
        # From the console's own page, with the form's token: cancelled.
        form = {CSRF_FIELD: csrf_token("")}
        own = browser.post(cancel, data=form, headers={"Origin": trusted.url})
        assert own.status_code == 303, own.text
        assert trusted.wait_terminal(job_id)["status"] == "cancelled"
    finally:
        browser.close()


def test_a_console_page_over_the_keys_rate_limit_is_a_page_that_says_so(service: Service) -> None:
    key = service.new_key("acme", "read", requests_per_s=0.001, requests_burst=1)
    browser = httpx.Client(base_url=service.url, timeout=10, cookies={"inferflow_console": key})
    try:
        assert browser.get("/console/jobs").status_code == 200
        limited = browser.get("/console/jobs")
        assert limited.status_code == 429
        assert limited.headers["content-type"].startswith("text/html")
        assert "<h1>Too many requests</h1>" in limited.text and "Retry-After" in limited.headers
        # The API's own answer stays a problem detail.
        problem(service.client(key).get("/v1/jobs"), 429, "rate-limited")
    finally:
        browser.close()
