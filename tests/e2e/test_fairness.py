"""Fair scheduling through the real processes, at a small scale: a tenant's bulk backlog holds
up neither another tenant's jobs nor its own interactive ones, on the consumers, in the
projection or in the wake-up of a waiting request. The jobs are all queued before any consumer
runs, so a first-in-first-out log would serve the backlog first, every time; timings are the
bench's (docs/benchmarks.md), these are orders."""

from __future__ import annotations

import threading
import time
import uuid

import httpx
import pytest
from sqlalchemy import create_engine, text

from eventlog.positions import position
from tests.e2e.harness import Service

BACKLOG = 6000
BATCH = 1000


@pytest.fixture
def stack(make_service) -> Service:
    service = make_service()
    service.start("projector")
    service.start("api")
    return service


def tenant(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def backlog(client: httpx.Client, jobs: int = BACKLOG) -> list[str]:
    ids: list[str] = []
    for at in range(0, jobs, BATCH):
        items = [{"text": f"bulk {at + i}"} for i in range(BATCH)]
        answer = client.post("/v1/inference/batch", json={"items": items}, timeout=60)
        assert answer.status_code == 202, answer.text
        ids += [item["job_id"] for item in answer.json()["items"]]
    return ids


def terminal(service: Service, name: str) -> int:
    """How many of tenant `name`'s jobs the projection shows terminal: one query, so that it
    reads the moment it is called."""
    engine = create_engine(service.env["DATABASE_URL"])
    try:
        with engine.connect() as conn:
            query = text(
                "SELECT count(*) FROM jobs WHERE tenant = :t AND status IN ('succeeded', 'failed')"
            )
            return int(conn.execute(query, {"t": name}).scalar_one())
    finally:
        engine.dispose()


def outcomes_before(service: Service, name: str, moment: str) -> int:
    """How many of tenant `name`'s outcomes the consumers wrote before the entry id `moment`
    (ids of all lanes carry Redis's clock)."""
    ids = {f["job_id"] for _, f in service.log() if f.get("tenant") == name}
    return sum(
        1
        for entry_id, f in service.log()
        if f.get("type") in ("JobSucceeded", "JobFailed")
        and f["job_id"] in ids
        and position(entry_id) < position(moment)
    )


def last_outcome(service: Service, job_ids: set[str]) -> str:
    return max(
        (
            entry_id
            for entry_id, f in service.log()
            if f.get("type") in ("JobSucceeded", "JobFailed") and f["job_id"] in job_ids
        ),
        key=position,
    )


def wait_in_threads(
    client: httpx.Client, texts: list[str]
) -> tuple[list[httpx.Response], list[threading.Thread]]:
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def one(text: str) -> None:
        response = client.post(
            "/v1/inference", json={"text": text}, headers={"Prefer": "wait=60"}, timeout=90
        )
        with lock:
            answers.append(response)

    threads = [threading.Thread(target=one, args=(text,)) for text in texts]
    for thread in threads:
        thread.start()
    return answers, threads


def test_another_tenants_waiting_jobs_finish_long_before_a_bulk_backlog(stack: Service):
    a_name, b_name = tenant("a"), tenant("b")
    a, b = stack.client_of(a_name), stack.client_of(b_name)
    bulk = backlog(a)
    answers, threads = wait_in_threads(b, [f"b waits {i}" for i in range(5)])
    stack.start_consumers(2)
    for thread in threads:
        thread.join()
    # The projection: when the last waiting request was answered, most of the backlog queued
    # before them was not projected yet.
    assert terminal(stack, a_name) < BACKLOG // 2
    # The wake-up: each waiting request was answered with its terminal job, woken by the commit
    # of its own lane.
    assert [r.status_code for r in answers] == [200] * 5
    assert {r.json()["status"] for r in answers} <= {"succeeded", "failed"}
    # The consumers: B's outcomes came before most of A's.
    b_done = last_outcome(stack, {r.json()["job_id"] for r in answers})
    assert outcomes_before(stack, a_name, b_done) < BACKLOG // 2
    stack.wait_terminal(bulk[-1], timeout_s=120)


def test_a_tenants_interactive_job_does_not_wait_behind_its_own_bulk(stack: Service):
    name = tenant("a")
    a = stack.client_of(name)
    backlog(a)
    answers, threads = wait_in_threads(a, ["a waits too"])
    stack.start_consumers(2)
    threads[0].join()
    assert terminal(stack, name) < BACKLOG // 2
    assert answers[0].status_code == 200
    done = last_outcome(stack, {answers[0].json()["job_id"]})
    assert outcomes_before(stack, name, done) < BACKLOG // 2


def test_a_small_batch_of_another_tenant_is_not_behind_a_large_one(stack: Service):
    a_name, b_name = tenant("a"), tenant("b")
    a, b = stack.client_of(a_name), stack.client_of(b_name)
    backlog(a)
    small = backlog(b, 100)
    stack.start_consumers(2)
    deadline = time.monotonic() + 60
    while terminal(stack, b_name) < len(small):
        assert time.monotonic() < deadline, "the small batch did not finish"
        time.sleep(0.01)
    # Round-robin: the small batch had an equal share of every round from the start, in the
    # consumers and in the projector.
    assert terminal(stack, a_name) < BACKLOG // 2
    assert outcomes_before(stack, a_name, last_outcome(stack, set(small))) < BACKLOG // 2
