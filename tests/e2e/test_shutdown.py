"""SIGTERM: a consumer finishes its job and hands back the rest; the API drains its requests."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from tests.e2e.harness import Service

pytestmark = pytest.mark.e2e


def wait_until_started(service: Service, job_id: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while service.http.get(f"/v1/jobs/{job_id}").json()["status"] == "queued":
        assert time.monotonic() < deadline, "no consumer started the job"
        time.sleep(0.02)


def test_a_terminated_consumer_finishes_its_job_and_hands_back_the_rest(make_service):
    # A claim threshold far longer than the test: only a hand-back lets others take over.
    service: Service = make_service(CLAIM_IDLE_MS="60000", BATCH_MAX_SIZE="16")
    service.start("projector")
    service.start("api")
    jobs = [service.submit(f"[[sleep_ms:300]] report {i}").json()["job_id"] for i in range(8)]
    # Started once all eight wait, so that its first read takes them all.
    service.start("consumer", "leaving")
    wait_until_started(service, jobs[0])  # "leaving" holds the batch and is in the middle of it
    service.start("consumer", "staying")
    began = time.monotonic()
    assert service.stop("leaving", timeout_s=10) == 0
    assert time.monotonic() - began < 5, "stopping waits for one job, not for the batch"
    finished = [service.wait_terminal(job, timeout_s=30) for job in jobs]
    assert all(job["status"] == "succeeded" for job in finished)
    assert "handed back" in service.logs("leaving")


def test_a_terminated_api_answers_what_it_accepted_and_loses_nothing(make_service):
    service: Service = make_service()
    service.start_all(consumers=1)
    accepted: list[str] = []
    statuses: list[int] = []
    stop = threading.Event()
    auth = {"Authorization": f"Bearer {service.admin_key}"}

    def submit_until_refused() -> None:
        with httpx.Client(base_url=service.url, timeout=5, headers=auth) as client:
            while not stop.is_set():
                try:
                    reply = client.post("/v1/inference", json={"text": "see you at ten"})
                except httpx.TransportError:
                    return  # the API has closed its socket
                statuses.append(reply.status_code)
                if reply.status_code == 202:
                    accepted.append(reply.json()["job_id"])

    clients = [threading.Thread(target=submit_until_refused) for _ in range(4)]
    for client in clients:
        client.start()
    time.sleep(1.0)
    service.signal("api", signal.SIGTERM)
    # uvicorn exits by re-raising the SIGTERM it handled, once it has drained its requests.
    assert service.procs["api"].wait(15) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in service.logs("api")
    stop.set()
    for client in clients:
        client.join()
    assert accepted and set(statuses) == {202}, "in-flight requests were answered, not cut"
    service.start("api")
    for job in accepted:
        assert service.wait_terminal(job)["status"] == "succeeded"
