"""Cancelling jobs and batches, and deadlines (Cancel-After), through HTTP against real api,
consumer and projector processes.

One stack for the module, idle at first (no consumer: every job stays queued), then working
(a consumer starts in `test_cancelled_jobs_never_reach_a_consumer`): the tests run in the
file's order, the idle ones first.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from redis.cluster import RedisCluster

from tests.e2e.conftest import ServiceFactory
from tests.e2e.harness import Service

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"
URN = "urn:inferflow:problem:"
SPAM = "limited time offer, click now to claim your free prize"
# Long enough to cancel it while it runs, short enough for a test.
SLOW = "[[sleep_ms:3000]] claim your free prize"
UNKNOWN_JOB = "01a2222c-2f5b-872f-b08b-c988cdc0bb63"
UNKNOWN_BATCH = "7d1c1c55-58d9-4d0b-9a52-4b8c8f0b6f0e"
# Far above what the wake needs: a wait that returns well before this was woken.
LONG_WAIT_S = 30
TERMINAL_EVENTS = ("JobSucceeded", "JobFailed", "JobCancelled")


@pytest.fixture(scope="module")
def stack(make_service: ServiceFactory) -> Service:
    """Projector and API, no consumer yet; predictions may take seconds (SLOW)."""
    service = make_service(INFERENCE_TIMEOUT_MS="10000", DEADLINE_SWEEP_MS="100")
    service.start("projector")
    service.start("api")
    return service


@pytest.fixture
def working(stack: Service) -> Service:
    """The stack with its consumer."""
    if "consumer-0" not in stack.procs:
        stack.start_consumers(1)
    return stack


def submit(service: Service, text: str = SPAM, **headers: str) -> str:
    response = service.submit(text, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def submit_batch(service: Service, items: list[dict[str, Any]], **headers: str) -> dict:
    response = service.http.post("/v1/inference/batch", json={"items": items}, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()


def cancel(client: httpx.Client, job_id: str) -> httpx.Response:
    return client.post(f"/v1/jobs/{job_id}/cancel")


def cancel_batch(client: httpx.Client, batch_id: str) -> httpx.Response:
    return client.post(f"/v1/batches/{batch_id}/cancel")


def problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == URN + slug and body["status"] == status
    return body


def events(service: Service, job_id: str) -> list[dict[str, str]]:
    """The job's entries in the log, in order."""
    return [fields for _, fields in service.log() if fields.get("job_id") == job_id]


def types(service: Service, job_id: str) -> list[str]:
    return [fields["type"] for fields in events(service, job_id)]


def wait_for(service: Service, job_id: str, status: str, timeout_s: float = 30) -> dict:
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = service.http.get(f"/v1/jobs/{job_id}").json()
        if body["status"] == status:
            return body
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} still {body.get('status')}, not {status}")


def dropped_by_its_consumer(service: Service, job_id: str, timeout_s: float = 30) -> None:
    """Wait until the consumer that ran the job has finished it and written nothing, as its
    log says."""
    assert service.log_dir is not None
    log = service.log_dir / "consumer-0.log"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if job_id in line and "nothing written" in line:
                return
        time.sleep(0.1)
    raise TimeoutError(f"consumer-0 never dropped job {job_id}'s outcome")


def without_id(body: dict[str, Any], *ids: str) -> dict[str, Any]:
    detail = body["detail"]
    for one in ids:
        detail = detail.replace(one, "<id>")
    return {**body, "detail": detail}


# ---------------------------------------------------------------- idle: every job stays queued


def test_cancelling_needs_a_key_with_the_scope_of_the_jobs_tenant(stack: Service):
    job_id = submit(stack)
    batch_id = submit_batch(stack, [{"text": SPAM}])["batch_id"]
    for path in (f"/v1/jobs/{job_id}/cancel", f"/v1/batches/{batch_id}/cancel"):
        problem(stack.client(None).post(path), 401, "unauthenticated")
        problem(stack.client("ifk_" + "x" * 40).post(path), 401, "unauthenticated")
        refused = problem(stack.client_of("default", "submit", "read").post(path), 403, "forbidden")
        assert refused["scope"] == "cancel"
    # Another tenant's job and batch are answered exactly as ones that do not exist.
    other = stack.client_of("other", "submit", "read", "cancel")
    theirs = problem(cancel(other, job_id), 404, "http-404")
    none = problem(cancel(other, UNKNOWN_JOB), 404, "http-404")
    assert without_id(theirs, job_id) == without_id(none, UNKNOWN_JOB)
    theirs = problem(cancel_batch(other, batch_id), 404, "http-404")
    none = problem(cancel_batch(other, UNKNOWN_BATCH), 404, "http-404")
    assert without_id(theirs, batch_id) == without_id(none, UNKNOWN_BATCH)
    problem(cancel(other, "not-a-job"), 404, "http-404")
    problem(cancel_batch(other, "not-a-batch"), 404, "http-404")
    # Nothing was cancelled by any of them.
    assert stack.http.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
    assert "JobCancelled" not in types(stack, job_id)
    # A key of the tenant with the scope may.
    mine = stack.client_of("default", "cancel", "read")
    assert cancel(mine, job_id).json()["status"] == "cancelled"


def test_a_queued_job_is_cancelled_at_once_and_a_second_cancel_is_harmless(stack: Service):
    job_id = submit(stack)
    first = cancel(stack.http, job_id)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["status"] == "cancelled" and body["cancel_reason"] == "requested"
    assert body["finished_at"] is not None and body["started_at"] is None
    again = cancel(stack.http, job_id)
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "cancelled"
    assert again.json()["cancel_reason"] == "requested"
    projected = wait_for(stack, job_id, "cancelled")
    assert projected["cancel_reason"] == "requested"
    assert types(stack, job_id) == ["JobRequested", "JobCancelled"]
    # The timeline shows it, with who cancelled it.
    timeline = stack.http.get(f"/v1/jobs/{job_id}/events").json()["events"]
    assert [e["type"] for e in timeline] == ["JobRequested", "JobCancelled"]
    assert timeline[-1]["payload"]["reason"] == "requested"
    assert timeline[-1]["payload"]["by"].startswith("api")


def test_a_long_poll_is_woken_by_the_cancel(stack: Service):
    job_id = submit(stack)
    answers: list[tuple[dict, float]] = []

    def wait() -> None:
        began = time.monotonic()
        response = stack.http.get(
            f"/v1/jobs/{job_id}", params={"wait": LONG_WAIT_S}, timeout=LONG_WAIT_S + 10
        )
        answers.append((response.json(), time.monotonic() - began))

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.5)  # the wait registers (were it later, its first read finds the cancel)
    assert cancel(stack.http, job_id).status_code == 200
    waiter.join()
    ((body, waited_s),) = answers
    assert body["status"] == "cancelled"
    assert waited_s < LONG_WAIT_S  # woken, not timed out


def test_a_batch_cancel_ends_its_queued_jobs_and_no_others(stack: Service):
    batch = submit_batch(stack, [{"text": SPAM, "custom_id": f"m-{i}"} for i in range(5)])
    bystander = submit_batch(stack, [{"text": SPAM}])
    jobs = [item["job_id"] for item in batch["items"]]
    # Every job projected (a listing shows projected jobs only; a read by id answers queued
    # before that too), so that the cancel ends each at once: no consumer runs here.
    deadline = time.monotonic() + 30
    while True:
        listed = stack.http.get("/v1/jobs", params={"batch_id": batch["batch_id"]}).json()
        if {job["job_id"] for job in listed["items"]} == set(jobs):
            break
        assert time.monotonic() < deadline, "the batch's jobs were never projected"
        time.sleep(0.05)
    response = cancel_batch(stack.http, batch["batch_id"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["batch_id"] == batch["batch_id"]
    assert body["status"] in ("cancelling", "cancelled")
    for job_id in jobs:
        assert wait_for(stack, job_id, "cancelled")["cancel_reason"] == "batch_cancelled"
    assert stack.http.get(f"/v1/batches/{batch['batch_id']}").json()["status"] == "cancelled"
    again = cancel_batch(stack.http, batch["batch_id"])
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    for job_id in jobs:
        assert types(stack, job_id) == ["JobRequested", "JobCancelled"]
    bystander_job = bystander["items"][0]["job_id"]
    assert stack.http.get(f"/v1/jobs/{bystander_job}").json()["status"] == "queued"


def test_cancelled_jobs_never_reach_a_consumer(stack: Service):
    cancelled = [submit(stack) for _ in range(5)]
    kept = [submit(stack) for _ in range(5)]
    for job_id in cancelled:
        assert cancel(stack.http, job_id).json()["status"] == "cancelled"
    # A batch cancelled at once, before the projector may know its jobs: its mark ends them
    # when the consumer reaches them.
    batch = submit_batch(stack, [{"text": SPAM} for _ in range(5)])
    assert cancel_batch(stack.http, batch["batch_id"]).status_code == 200
    batched = [item["job_id"] for item in batch["items"]]
    # Deadlines that pass while nothing runs: the job ends, never having run.
    expiring = submit(stack, **{"Cancel-After": "1s"})
    item_expiring = submit_batch(stack, [{"text": SPAM, "cancel_after": "1s"}])["items"][0]
    time.sleep(1.5)

    working = stack
    working.start_consumers(1)
    for job_id in kept:
        assert working.wait_terminal(job_id)["status"] == "succeeded"
    for job_id in cancelled:
        assert types(working, job_id) == ["JobRequested", "JobCancelled"]
    for job_id in batched:
        assert wait_for(working, job_id, "cancelled")["cancel_reason"] == "batch_cancelled"
        assert types(working, job_id) == ["JobRequested", "JobCancelled"]
    for job_id in (expiring, item_expiring["job_id"]):
        assert wait_for(working, job_id, "cancelled")["cancel_reason"] == "expired"
        assert types(working, job_id) == ["JobRequested", "JobCancelled"]


# ---------------------------------------------------------------- working: a consumer runs jobs


def test_a_running_jobs_cancel_drops_its_outcome(working: Service):
    job_id = submit(working, SLOW)
    wait_for(working, job_id, "started")
    response = cancel(working.http, job_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "cancelled" and body["cancel_reason"] == "requested"
    assert body["started_at"] is not None
    dropped_by_its_consumer(working, job_id)
    assert types(working, job_id) == ["JobRequested", "JobStarted", "JobCancelled"]
    assert working.http.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"


def test_cancelling_an_ended_job_is_a_conflict_that_says_how_it_ended(working: Service):
    done = submit(working)
    failed = submit(working, "[[permanent]] breaks the model")
    assert working.wait_terminal(done)["status"] == "succeeded"
    assert working.wait_terminal(failed)["status"] == "failed"
    ended = problem(cancel(working.http, done), 409, "job-ended")
    assert "succeeded" in ended["detail"] and ended["job_status"] == "succeeded"
    ended = problem(cancel(working.http, failed), 409, "job-ended")
    assert "failed" in ended["detail"] and ended["job_status"] == "failed"
    assert working.http.get(f"/v1/jobs/{done}").json()["status"] == "succeeded"
    assert types(working, done)[-1] == "JobSucceeded"


def test_a_batch_whose_jobs_all_ended_is_a_conflict(working: Service):
    batch = submit_batch(working, [{"text": SPAM}])
    working.wait_terminal(batch["items"][0]["job_id"])
    problem(cancel_batch(working.http, batch["batch_id"]), 409, "batch-ended")
    status = working.http.get(f"/v1/batches/{batch['batch_id']}").json()["status"]
    assert status == "completed"


def test_cancel_racing_completion_ends_every_job_once(working: Service):
    """Jobs of 20 ms each, cancelled in a random order while the consumer works through them:
    some cancels find their job queued, some running, some ended. Each job has one terminal
    event, and each cancel's answer agrees with it."""
    jobs = [
        item["job_id"]
        for item in submit_batch(
            working, [{"text": f"[[sleep_ms:20]] {SPAM} #{i}"} for i in range(80)]
        )["items"]
    ]
    order = random.Random(16).sample(jobs, len(jobs))

    def one(job_id: str) -> tuple[str, httpx.Response]:
        time.sleep(random.uniform(0, 0.3))
        return job_id, cancel(working.http, job_id)

    with ThreadPoolExecutor(max_workers=8) as pool:
        answered = list(pool.map(one, order))
    finals = {job_id: working.wait_terminal(job_id)["status"] for job_id in jobs}
    log = working.log()
    outcomes = {"cancelled": 0, "succeeded": 0}
    for job_id, response in answered:
        terminal = [
            f["type"] for _, f in log if f["job_id"] == job_id and f["type"] in TERMINAL_EVENTS
        ]
        assert len(terminal) == 1, (job_id, terminal)
        if response.status_code == 200:
            assert finals[job_id] == "cancelled" and terminal == ["JobCancelled"]
        else:
            body = problem(response, 409, "job-ended")
            assert finals[job_id] == "succeeded" and terminal == ["JobSucceeded"]
            assert "succeeded" in body["detail"]
        outcomes[finals[job_id]] += 1
    print(outcomes)  # how the race went (pytest -rP)
    # The drain takes longer than the cancels: some of them won (most runs, both sides do).
    assert outcomes["cancelled"] > 0, outcomes


def test_a_job_still_running_at_its_deadline_is_timed_out(working: Service):
    job_id = submit(working, SLOW, **{"Cancel-After": "1500ms"})
    body = wait_for(working, job_id, "cancelled", timeout_s=30)
    assert body["cancel_reason"] == "timed_out", body
    dropped_by_its_consumer(working, job_id)
    assert types(working, job_id) == ["JobRequested", "JobStarted", "JobCancelled"]
    cancelled = events(working, job_id)[-1]
    assert cancelled["reason"] == "timed_out" and cancelled["by"].startswith("consumer-")


def test_a_job_that_ends_before_its_deadline_keeps_its_outcome(working: Service):
    job_id = submit(working, **{"Cancel-After": "1m"})
    body = working.wait_terminal(job_id)
    assert body["status"] == "succeeded" and body["deadline"] is not None
    assert cancel(working.http, job_id).status_code == 409


def connections_received(client: RedisCluster) -> int:
    """Connections the cluster's masters have accepted so far."""
    stats = client.info("stats", target_nodes=RedisCluster.PRIMARIES)
    return sum(int(node["total_connections_received"]) for node in stats.values())


def test_with_submit_replicas_cancels_wait_for_a_replica_on_the_apis_own_connections(
    make_service: ServiceFactory, redis_url: str, redis_cluster: bool
):
    if not redis_cluster:
        pytest.skip("needs replicas: the cluster pass (a replica per master)")
    service = make_service(SUBMIT_REPLICAS="1", DEPENDENCY_TIMEOUT_MS="5000")
    service.start("projector")
    service.start("api")
    jobs = [submit(service) for _ in range(6)]
    assert cancel(service.http, jobs[0]).status_code == 200  # connections to the masters made
    counter = RedisCluster.from_url(redis_url)
    try:
        before = connections_received(counter)
        for job_id in jobs[1:]:
            response = cancel(service.http, job_id)
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "cancelled"
        # The writer that waits for replicas is the process's one, kept: a writer made for
        # each request would connect to the job's master every time (5 cancels, 5 or more).
        assert connections_received(counter) - before < len(jobs[1:])
    finally:
        counter.close()
    for job_id in jobs:
        assert wait_for(service, job_id, "cancelled")["cancel_reason"] == "requested"
    # A batch's cancel marks it in every partition through the same writer.
    batch = submit_batch(service, [{"text": SPAM} for _ in range(3)])
    cancelled = cancel_batch(service.http, batch["batch_id"])
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] in ("cancelling", "cancelled")
