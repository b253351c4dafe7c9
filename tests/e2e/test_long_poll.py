"""Long-polls through real processes: GET /v1/jobs/{id}?wait=S and POST with Prefer: wait=S."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from api.submission import KEY_HEADER, REPLAY_HEADER
from tests.e2e.conftest import ServiceFactory
from tests.e2e.harness import TERMINAL, Service

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"
JOB_FIELDS = {"job_id", "status", "result", "error", "attempts", "created_at", "updated_at"}
# Far above what these jobs need: a wait that returns well before it was woken, not timed out.
LONG_WAIT_S = 30
WOKEN_WITHIN_S = 10
SLOW_TEXT = "[[sleep_ms:1500]] claim your free prize now"


@pytest.fixture(scope="module")
def running(make_service: ServiceFactory) -> Service:
    """Projector, one consumer and the API; inference may take seconds (see SLOW_TEXT)."""
    service = make_service(INFERENCE_TIMEOUT_MS="5000")
    service.start_all(consumers=1)
    return service


@pytest.fixture(scope="module")
def idle(make_service: ServiceFactory) -> Service:
    """No consumer, so no job ever finishes; every wait is cut to one second."""
    service = make_service(MAX_WAIT_S="1")
    service.start("projector")
    service.start("api")
    return service


def get_job(service: Service, job_id: str, wait: object) -> tuple[dict, float]:
    began = time.monotonic()
    response = service.http.get(f"/v1/jobs/{job_id}", params={"wait": wait}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json(), time.monotonic() - began


def submit_waiting(service: Service, text: str, prefer: str, **headers: str):
    return service.http.post(
        "/v1/inference", json={"text": text}, headers={"Prefer": prefer, **headers}, timeout=60
    )


# Woken by the job's outcome


def test_a_long_poll_answers_as_soon_as_the_job_is_terminal(running: Service):
    job_id = running.submit(SLOW_TEXT).json()["job_id"]
    before = running.http.get(f"/v1/jobs/{job_id}").json()
    assert before["status"] not in TERMINAL  # inference takes 1.5 s: the wait has work to do

    body, elapsed_s = get_job(running, job_id, LONG_WAIT_S)

    assert body["status"] == "succeeded"
    assert body["result"]["label"] in ("ham", "spam")
    assert elapsed_s < WOKEN_WITHIN_S  # woken by the event, not by the 30 s running out
    # Answered from the projector's announcement, it is what a read of the job gives.
    assert running.http.get(f"/v1/jobs/{job_id}").json() == body


def test_a_long_poll_on_a_terminal_job_answers_with_it(running: Service):
    job_id = running.submit("see you at lunch").json()["job_id"]
    finished = running.wait_terminal(job_id)
    body, _ = get_job(running, job_id, LONG_WAIT_S)
    assert body == finished


def test_prefer_wait_answers_the_submission_with_the_outcome(running: Service):
    response = submit_waiting(running, SLOW_TEXT, "respond-async, wait=30")

    assert response.status_code == 200, response.text
    assert response.headers["Preference-Applied"] == "wait=30"
    body = response.json()
    assert body["status"] == "succeeded" and body["result"]["label"] in ("ham", "spam")
    assert response.headers["Location"] == f"/v1/jobs/{body['job_id']}"
    assert running.http.get(response.headers["Location"]).json() == body


def test_prefer_wait_answers_a_failure_too(running: Service):
    response = submit_waiting(running, "[[permanent]] hello", "wait=30")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "failed" and body["error"] == "injected permanent fault"
    assert running.http.get(response.headers["Location"]).json() == body


def test_a_replay_with_prefer_wait_answers_the_original_job(running: Service):
    key = {KEY_HEADER: f"k-{uuid.uuid4()}"}
    first = submit_waiting(running, "meeting moved to 3pm", "wait=30", **key)
    again = submit_waiting(running, "meeting moved to 3pm", "wait=30", **key)

    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert REPLAY_HEADER not in first.headers
    assert again.headers[REPLAY_HEADER] == "true"


# When nothing finishes the job


def test_a_long_poll_runs_out_with_the_job_as_it_is(idle: Service):
    job_id = idle.submit("nobody works here").json()["job_id"]
    body, _ = get_job(idle, job_id, LONG_WAIT_S)  # cut to MAX_WAIT_S
    assert body["job_id"] == job_id and body["status"] == "queued"


def test_prefer_wait_runs_out_with_a_202_and_the_job(idle: Service):
    response = submit_waiting(idle, "nobody works here", "wait=100")

    assert response.status_code == 202, response.text
    assert response.headers["Preference-Applied"] == "wait=1"  # what MAX_WAIT_S allowed
    body = response.json()
    assert body.keys() >= JOB_FIELDS and body["status"] == "queued"
    assert response.headers["Location"] == f"/v1/jobs/{body['job_id']}"


@pytest.mark.parametrize("prefer", [None, "respond-async", "wait=soon", "wait=-1"])
def test_without_a_readable_wait_the_submission_is_unchanged(idle: Service, prefer: str | None):
    headers = {"Prefer": prefer} if prefer else {}
    response = idle.submit("no waiting", headers=headers)
    assert response.status_code == 202
    assert response.json() == {"job_id": response.json()["job_id"], "status": "queued"}
    assert "Preference-Applied" not in response.headers


@pytest.mark.parametrize("wait", ["61", "-1", "abc", "nan", "inf", ""])
def test_an_invalid_wait_is_422(idle: Service, wait: str):
    job_id = idle.submit("fine").json()["job_id"]
    response = idle.http.get(f"/v1/jobs/{job_id}", params={"wait": wait})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == "urn:inferflow:problem:validation-error"
    assert [error["field"] for error in body["errors"]] == ["query.wait"]


def test_a_long_poll_for_an_unknown_job_is_404_at_once(running: Service):
    # Within the client's 10 s timeout, although the wait asked for is 30 s.
    response = running.http.get(f"/v1/jobs/{uuid.uuid4()}", params={"wait": LONG_WAIT_S})
    assert response.status_code == 404


# Redis going away under a waiting request


def test_a_long_poll_survives_a_redis_restart(make_service: ServiceFactory, tmp_path):
    from devstack.servers import embedded_redis

    with embedded_redis(tmp_path) as server, ThreadPoolExecutor(1) as pool:
        service = make_service(redis_url=server.url)
        service.start("projector")
        service.start("api")  # no consumer yet: the job waits
        job_id = service.submit("dinner at eight?").json()["job_id"]

        def long_poll() -> tuple[dict, float]:
            began = time.monotonic()
            with service.client(service.admin_key) as client:
                response = client.get(f"/v1/jobs/{job_id}", params={"wait": 60}, timeout=90)
            return response.json(), time.monotonic() - began

        waiting = pool.submit(long_poll)
        time.sleep(0.5)  # let the request start waiting; it proves nothing if it starts later
        server.kill()
        server.restart()
        service.start("consumer", "late-consumer")
        body, elapsed_s = waiting.result()

    assert body["status"] == "succeeded"
    # Woken through the new subscription, not by the 60 s running out.
    assert elapsed_s < 40
