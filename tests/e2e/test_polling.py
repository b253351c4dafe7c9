"""Polling GET /v1/jobs/{id} through real processes: ETag and If-None-Match (304), Retry-After,
finished jobs answered from the API's memory with tenants kept apart, and the body unchanged."""

from __future__ import annotations

import time

import httpx
import pytest

from api.schemas import JobBody
from tests.e2e.conftest import ServiceFactory
from tests.e2e.harness import TERMINAL, Service

pytestmark = pytest.mark.e2e

SLOW_TEXT = "[[sleep_ms:1500]] claim your free prize now"


@pytest.fixture(scope="module")
def running(make_service: ServiceFactory) -> Service:
    """Projector, one consumer (stopped and started again by some tests) and the API."""
    service = make_service(INFERENCE_TIMEOUT_MS="5000")
    service.start_all(consumers=1)
    return service


def read(client: httpx.Client, job_id: str, etag: str | None = None, **params) -> httpx.Response:
    headers = {"If-None-Match": etag} if etag else {}
    return client.get(f"/v1/jobs/{job_id}", headers=headers, params=params, timeout=30)


def finished(service: Service, text: str = "see you at lunch") -> dict:
    job_id = service.submit(text).json()["job_id"]
    return service.wait_terminal(job_id)


def assert_not_modified(response: httpx.Response, etag: str) -> None:
    assert response.status_code == 304, response.text
    assert response.content == b""
    assert response.headers["etag"] == etag


def consumers_stopped(service: Service):
    """Stop the consumer for the block, so that a job submitted in it stays queued."""

    class Stopped:
        def __enter__(self) -> None:
            service.stop("consumer-0")

        def __exit__(self, *_: object) -> None:
            service.start("consumer", "consumer-0")

    return Stopped()


# Tags and 304


def test_a_finished_job_has_a_tag_that_never_changes(running: Service):
    job = finished(running)
    answers = [read(running.http, job["job_id"]) for _ in range(3)]
    tags = {answer.headers["etag"] for answer in answers}
    assert len(tags) == 1
    (tag,) = tags
    assert tag.startswith('W/"')
    assert all(answer.json() == job for answer in answers)
    assert all("retry-after" not in answer.headers for answer in answers)


def test_if_none_match_with_the_current_tag_is_304_without_a_body(running: Service):
    job = finished(running)
    tag = read(running.http, job["job_id"]).headers["etag"]
    assert_not_modified(read(running.http, job["job_id"], tag), tag)
    # Weak comparison; a list naming it; any tag of an existing job.
    assert_not_modified(read(running.http, job["job_id"], tag.removeprefix("W/")), tag)
    assert_not_modified(read(running.http, job["job_id"], f'"other", {tag}'), tag)
    assert_not_modified(read(running.http, job["job_id"], "*"), tag)
    # Another tag: the job in full.
    other = read(running.http, job["job_id"], 'W/"0123456789abcdef"')
    assert other.status_code == 200 and other.json() == job


def test_a_queued_job_says_when_to_come_back_and_its_tag_changes_as_it_runs(running: Service):
    with consumers_stopped(running):
        job_id = running.submit("see you at lunch").json()["job_id"]
        first = read(running.http, job_id)
        assert first.status_code == 200
        assert first.json()["status"] == "queued"
        assert first.headers["retry-after"] == "1"
        tag = first.headers["etag"]
        unchanged = read(running.http, job_id, tag)
        assert_not_modified(unchanged, tag)
        assert unchanged.headers["retry-after"] == "1"
    running.wait_terminal(job_id)

    changed = read(running.http, job_id, tag)

    assert changed.status_code == 200
    assert changed.json()["status"] in TERMINAL
    assert changed.headers["etag"] != tag
    assert "retry-after" not in changed.headers


def test_a_running_job_says_when_to_come_back_and_a_long_poll_does_not(running: Service):
    job_id = running.submit(SLOW_TEXT).json()["job_id"]
    polled = read(running.http, job_id)
    assert polled.json()["status"] not in TERMINAL  # inference takes 1.5 s
    assert polled.headers["retry-after"] == "1"
    # A long-poll that ran out before the job ended: its client asks again at once.
    waited = read(running.http, job_id, wait=0.2)
    assert waited.json()["status"] not in TERMINAL
    assert "retry-after" not in waited.headers
    assert waited.headers["etag"]
    # A long-poll answered at the end, from the projector's announcement, tagged as a read is.
    ended = read(running.http, job_id, wait=30)
    assert ended.json()["status"] in TERMINAL
    assert read(running.http, job_id).headers["etag"] == ended.headers["etag"]
    assert_not_modified(read(running.http, job_id, ended.headers["etag"]), ended.headers["etag"])


# Tenants and reads after a 202


def test_another_tenants_finished_job_is_404_even_when_this_process_keeps_it(running: Service):
    job = finished(running)
    tag = read(running.http, job["job_id"]).headers["etag"]  # kept once read
    stranger = running.client_of("poll-stranger")
    for header in (None, tag, "*"):
        response = read(stranger, job["job_id"], header)
        assert response.status_code == 404, response.text
        assert "etag" not in response.headers
        assert response.json()["detail"] == f"no job {job['job_id']}"
    # Exactly as a job that does not exist.
    unknown = read(stranger, "01a2222c-2f5b-772f-b08b-c988cdc0bb63", tag)
    assert unknown.status_code == 404
    assert unknown.json()["detail"] == "no job 01a2222c-2f5b-772f-b08b-c988cdc0bb63"


def test_a_tenants_own_finished_job_is_answered_from_memory_to_it(running: Service):
    own = running.client_of("poll-owner")
    job_id = own.post("/v1/inference", json={"text": "lunch?"}).json()["job_id"]
    body = running.wait_terminal(job_id)
    first = read(own, job_id)
    again = read(own, job_id, first.headers["etag"])
    assert first.json() == body
    assert_not_modified(again, first.headers["etag"])
    assert read(running.client_of("poll-other"), job_id).status_code == 404


def test_a_read_right_after_a_202_is_never_404(running: Service):
    for _ in range(30):
        job_id = running.submit("see you at lunch").json()["job_id"]
        response = read(running.http, job_id)
        assert response.status_code == 200, response.text
        assert response.headers["etag"]


def test_a_submissions_202_says_when_a_first_poll_is_worth_it_and_a_long_polls_does_not(
    running: Service,
):
    accepted = running.submit("see you at lunch")
    assert accepted.status_code == 202 and accepted.headers["retry-after"] == "1"
    waited = running.http.post(
        "/v1/inference", json={"text": "see you at lunch"}, headers={"Prefer": "wait=5"}
    )
    assert waited.status_code in (200, 202) and "retry-after" not in waited.headers


# The body


def schema_fields(service: Service) -> set[str]:
    spec = service.http.get("/openapi.json").json()
    return set(spec["components"]["schemas"]["JobBody"]["properties"])


def assert_body_as_before(service: Service, body: dict) -> None:
    # What the route answered before it rendered the body itself: FastAPI's validation of the
    # model, then its JSON.
    assert set(body) == schema_fields(service)
    assert JobBody.model_validate(body).model_dump(mode="json") == body


def test_the_body_of_every_kind_of_job_is_as_before(running: Service):
    bodies = {
        "succeeded": finished(running),
        "failed": finished(running, "[[permanent]] no luck"),
    }
    with consumers_stopped(running):
        queued_id = running.submit("wait for me").json()["job_id"]
        bodies["queued"] = read(running.http, queued_id).json()
        cancelled = running.http.post(f"/v1/jobs/{queued_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
    bodies["cancelled"] = running.wait_terminal(queued_id)

    assert {kind: body["status"] for kind, body in bodies.items()} == {
        kind: kind for kind in bodies
    }
    for body in bodies.values():
        assert_body_as_before(running, body)
        # Read again (from this process's memory, when finished): the same.
        assert read(running.http, body["job_id"]).json() == body or body["status"] == "queued"
    assert bodies["succeeded"]["result"]["label"] in ("ham", "spam")
    assert bodies["failed"]["error_type"]
    assert bodies["cancelled"]["cancel_reason"] == "requested"


# The short path of a poll (api.quickread) and the answers it keeps (api.unfinished)


def routed(client: httpx.Client, job_id: str, etag: str | None = None) -> httpx.Response:
    """The same read through the app's route: a query keeps it off the short path."""
    return read(client, job_id, etag, wait=0)


def same_answer(short: httpx.Response, route: httpx.Response) -> None:
    assert short.status_code == route.status_code
    assert short.content == route.content
    for field in ("etag", "retry-after", "content-type", "content-length"):
        assert short.headers.get(field) == route.headers.get(field), field


def test_a_poll_on_the_short_path_is_answered_as_the_route_answers_it(running: Service):
    with consumers_stopped(running):
        queued_id = running.submit("see you at lunch").json()["job_id"]
        same_answer(read(running.http, queued_id), routed(running.http, queued_id))
    job = running.wait_terminal(queued_id)
    short, route = read(running.http, job["job_id"]), routed(running.http, job["job_id"])
    same_answer(short, route)
    tag = short.headers["etag"]
    same_answer(read(running.http, job["job_id"], tag), routed(running.http, job["job_id"], tag))


def test_every_poll_is_counted_as_the_routes(running: Service):
    job = finished(running)

    def answered() -> float:
        scraped = running.http.get("/metrics").text
        for line in scraped.splitlines():
            if line.startswith("inferflow_http_requests_total{") and (
                'route="/v1/jobs/{job_id}"' in line and 'status="200"' in line
            ):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = answered()
    for _ in range(5):
        assert read(running.http, job["job_id"]).status_code == 200
    assert answered() == before + 5


def test_a_started_job_reads_as_started_once_the_kept_answer_is_stale(running: Service):
    with consumers_stopped(running):
        job_id = running.submit(SLOW_TEXT).json()["job_id"]
        assert read(running.http, job_id).json()["status"] == "queued"  # kept for POLL_CACHE_MS
    seen = set()
    deadline = time.monotonic() + 30  # the consumer starts again first
    while (status := read(running.http, job_id).json()["status"]) == "queued":
        seen.add(status)
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # Inference takes 1.5 s: the start shows long before the end, though "queued" was kept.
    assert status == "started", seen
    running.wait_terminal(job_id)


def test_a_job_that_ends_reads_as_ended_at_once_however_long_answers_are_kept(
    make_service: ServiceFactory,
):
    service = make_service(POLL_CACHE_MS="10000")
    service.start_all(consumers=1)
    with consumers_stopped(service):
        job_id = service.submit("see you at lunch").json()["job_id"]
        assert read(service.http, job_id).json()["status"] == "queued"
    # Woken by the projector's announcement, which also ends what the process kept.
    deadline = time.monotonic() + 30
    while (status := read(service.http, job_id).json()["status"]) not in TERMINAL:
        assert time.monotonic() < deadline, status
        time.sleep(0.02)
    assert read(service.http, job_id, wait=0).json()["status"] == status
