"""Webhooks end to end: real api, consumer, projector and notifier processes, and a real HTTP
receiver on 127.0.0.1 (private networks allowed for it). Every delivery's signature is checked
with the standard library's HMAC, not with the package that signs them."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.roles import REPO_ROOT
from tests.e2e.conftest import ServiceFactory
from tests.e2e.harness import Service
from tests.e2e.receiver import Receiver, verified

pytestmark = pytest.mark.e2e

SECRET = "/v1/webhooks/secret"
# Short retries; a timeout long enough that a silent receiver is still silent while the others
# are served, and a lease just above it, so a killed notifier's messages come back soon.
NOTIFIER_ENV = {
    "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true",
    "WEBHOOK_SCHEDULE_S": "0.2,0.2,0.2",
    "WEBHOOK_JITTER": "0",
    "WEBHOOK_TIMEOUT_MS": "5000",
    "WEBHOOK_LEASE_MS": "6000",
    "WEBHOOK_POLL_MS": "20",
    "WEBHOOK_SECRET_CACHE_MS": "0",
    "WEBHOOK_CONCURRENCY": "16",
    "WEBHOOK_CONCURRENCY_PER_HOST": "4",
}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


@pytest.fixture(scope="module")
def service(make_service: ServiceFactory) -> Service:
    running = make_service(**NOTIFIER_ENV)
    running.start_all(consumers=1, notifiers=1)
    return running


def path(kind: str) -> str:
    """A path of its own for one test, so that its requests are told apart."""
    return f"/{kind}/{uuid.uuid4().hex[:8]}"


def submit(service: Service, url: str, **extra: Any) -> str:
    response = service.submit("win money now", webhook=url, **extra)
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def timeline_types(service: Service, job_id: str, until: str, timeout_s: float = 30) -> list[str]:
    """The job's event types once `until` is among them."""
    deadline = time.monotonic() + timeout_s
    types: list[str] = []
    while time.monotonic() < deadline:
        response = service.http.get(f"/v1/jobs/{job_id}/events")
        if response.status_code == 503:  # a dependency restarting (Redis, in a test below)
            time.sleep(0.1)
            continue
        assert response.status_code == 200, response.text
        types = [event["type"] for event in response.json()["events"]]
        if until in types:
            return types
        time.sleep(0.1)
    raise TimeoutError(f"{job_id}: no {until} in {types}")


def webhook_events(service: Service, job_id: str) -> list[dict[str, Any]]:
    events = service.http.get(f"/v1/jobs/{job_id}/events").json()["events"]
    return [event for event in events if event["type"].startswith("Webhook")]


def secret_of(service: Service) -> str:
    return service.http.get(SECRET).json()["secret"]


def test_a_job_is_delivered_signed_with_the_get_answer_as_its_body(
    service: Service, receiver: Receiver
):
    where = path("ok")
    job_id = submit(service, receiver.url(where), webhook_events_filter=["started", "completed"])
    started, completed = sorted(receiver.wait_for(where, 2), key=lambda r: r.json["status"])
    secret = secret_of(service)
    for request in (started, completed):
        assert verified(request, secret), request.headers
        assert request.headers["content-type"] == "application/json"
        assert request.json["job_id"] == job_id
    assert started.webhook_id == f"msg_{job_id}_started"
    assert completed.webhook_id == f"msg_{job_id}_completed"
    assert started.json["status"] == "started" and completed.json["status"] == "succeeded"
    # The body is the job as GET answers it, once the projection has it.
    assert completed.json == service.wait_terminal(job_id)
    types = timeline_types(service, job_id, "WebhookDelivered")
    assert types[:2] == ["JobRequested", "JobStarted"] and "JobSucceeded" in types
    deadline = time.monotonic() + 10
    while types.count("WebhookDelivered") < 2 and time.monotonic() < deadline:
        types = timeline_types(service, job_id, "WebhookDelivered")
    assert types.count("WebhookAttempted") == 2 and types.count("WebhookDelivered") == 2
    time.sleep(0.5)
    assert len(receiver.at(where)) == 2  # each message once


def test_by_default_only_completion_is_sent_and_a_job_without_webhook_sends_nothing(
    service: Service, receiver: Receiver
):
    where = path("ok")
    job_id = submit(service, receiver.url(where))
    (request,) = receiver.wait_for(where, 1)
    assert request.json["status"] == "succeeded"
    plain = service.submit("see you at seven").json()["job_id"]
    service.wait_terminal(plain)
    time.sleep(0.5)
    assert webhook_events(service, plain) == []
    assert len(receiver.at(where)) == 1 and request.webhook_id.startswith(f"msg_{job_id}")


def test_a_receiver_that_fails_then_succeeds_gets_the_same_webhook_id(
    service: Service, receiver: Receiver
):
    where = path("flaky/2")
    job_id = submit(service, receiver.url(where))
    requests = receiver.wait_for(where, 3)
    assert {r.webhook_id for r in requests} == {f"msg_{job_id}_completed"}
    assert {r.body for r in requests} == {requests[0].body}
    secret = secret_of(service)
    assert all(verified(r, secret) for r in requests)
    timeline_types(service, job_id, "WebhookDelivered")
    attempts = webhook_events(service, job_id)
    assert [e["type"] for e in attempts] == [
        "WebhookAttempted", "WebhookAttempted", "WebhookAttempted", "WebhookDelivered",
    ]  # fmt: skip
    assert [e["payload"]["status_code"] for e in attempts[:3]] == [500, 500, 200]
    assert [e["attempt"] for e in attempts] == [1, 2, 3, 3]


def test_410_stops_the_retries_and_the_message_is_a_dead_letter_to_redrive(
    service: Service, receiver: Receiver
):
    where = path("gone")
    job_id = submit(service, receiver.url(where))
    receiver.wait_for(where, 1)
    timeline_types(service, job_id, "WebhookAbandoned")
    time.sleep(1.0)  # the schedule's retries would have come by now
    assert len(receiver.at(where)) == 1
    abandoned = webhook_events(service, job_id)[-1]
    assert "410" in abandoned["payload"]["reason"]

    letters = notifier_cli(service, "dead-letters", "list")
    line = next(line for line in letters.splitlines() if f"msg_{job_id}_completed" in line)
    ref = line.split()[0]
    redriven = notifier_cli(service, "dead-letters", "redrive", ref)
    assert "redrove 1 of 1" in redriven
    again = receiver.wait_for(where, 2)
    assert {r.webhook_id for r in again} == {f"msg_{job_id}_completed"}
    assert again[0].body == again[1].body
    assert "redrove 0 of 1" in notifier_cli(service, "dead-letters", "redrive", ref)


def test_a_503_with_retry_after_is_tried_again_after_it(service: Service, receiver: Receiver):
    where = path("busy/2")
    job_id = submit(service, receiver.url(where))
    first, second = receiver.wait_for(where, 2, timeout_s=30)
    # The schedule says 0.2 s; the receiver asked for 2 s.
    assert second.at - first.at >= 1.9
    assert first.webhook_id == second.webhook_id == f"msg_{job_id}_completed"
    timeline_types(service, job_id, "WebhookDelivered")


def test_a_redirect_is_not_followed(service: Service, receiver: Receiver):
    where = path("redirect")
    job_id = submit(service, receiver.url(where))
    timeline_types(service, job_id, "WebhookAbandoned")
    assert len(receiver.at(where)) == 4  # every attempt of the schedule, none followed
    assert not receiver.at("/ok" + where.removeprefix("/redirect"))
    codes = [e["payload"]["status_code"] for e in webhook_events(service, job_id)[:-1]]
    assert codes == [307] * 4


def test_a_receiver_that_never_answers_does_not_hold_up_the_others(
    service: Service, receiver: Receiver
):
    silent_receiver = Receiver()  # another host (port): its own share of the slots
    try:
        silent = path("silent")
        # More messages to it than the notifier has slots (16) in all.
        for _ in range(20):
            submit(service, silent_receiver.url(silent))
        hanging = silent_receiver.wait_for(silent, 4)
        began = max(r.at for r in hanging)
        where = path("ok")
        for _ in range(4):
            submit(service, receiver.url(where))
        served = receiver.wait_for(where, 4, timeout_s=10)
        # All served while the silent receiver's requests still hang (their timeout is 5 s),
        # and it never had more than its share (4) in flight.
        assert max(r.at for r in served) - began < 4.5
        assert len(silent_receiver.at(silent)) == 4
    finally:
        silent_receiver.close()


def test_during_a_rotation_both_secrets_sign(service: Service, receiver: Receiver):
    client = service.client_of("rotating", "submit", "read")
    old = client.get(SECRET).json()["secret"]
    new = client.post(f"{SECRET}/rotate").json()["secret"]
    where = path("ok")
    response = client.post("/v1/inference", json={"text": "hi", "webhook": receiver.url(where)})
    assert response.status_code == 202, response.text
    (request,) = receiver.wait_for(where, 1)
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    assert verified(request, new) and verified(request, old)
    # Another tenant's secret signs none of them.
    assert not verified(request, secret_of(service))


def notifier_cli(service: Service, *args: str) -> str:
    run = subprocess.run(
        [sys.executable, "-m", "notifier", *args],
        env=service.env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def test_a_notifier_killed_mid_delivery_still_delivers_every_message(
    service: Service, receiver: Receiver
):
    where = path("slow/0.5")
    jobs = [submit(service, receiver.url(where)) for _ in range(12)]
    receiver.wait_for(where, 1)
    service.kill("notifier")
    time.sleep(0.5)
    service.start("notifier", NOTIFIER_NAME="notifier-again")
    expected = {f"msg_{job_id}_completed" for job_id in jobs}
    deadline = time.monotonic() + 60
    got: set[str] = set()
    while time.monotonic() < deadline and not expected <= got:
        got = {r.webhook_id for r in receiver.at(where)}
        time.sleep(0.1)
    assert expected <= got
    secret = secret_of(service)
    assert all(verified(r, secret) for r in receiver.at(where))


def test_a_url_refused_at_delivery_is_never_called(
    make_service: ServiceFactory, receiver: Receiver
):
    # The API allows private networks (so the job is accepted), the notifier does not: as if
    # the name had come to resolve to a private address after submit.
    running = make_service(**NOTIFIER_ENV)
    running.start("projector")
    running.start_consumers(1)
    running.start("notifier", WEBHOOK_ALLOW_PRIVATE_NETWORKS="false")
    running.start("api")
    where = path("ok")
    job_id = submit(running, receiver.url(where))
    timeline_types(running, job_id, "WebhookAbandoned")
    events = webhook_events(running, job_id)
    attempts = [e for e in events if e["type"] == "WebhookAttempted"]
    assert len(attempts) == 4
    assert all(e["payload"]["status_code"] == 0 for e in attempts)
    assert all("refused" in e["payload"]["error"] for e in attempts)
    assert receiver.at(where) == []


def batch_sent_once_complete(
    service: Service, receiver: Receiver, accepted: Any, where: str, jobs: int
) -> None:
    """The batch of the `accepted` answer is sent to `where` once, signed, when its `jobs` have
    all succeeded, as GET /v1/batches/{id} answers it."""
    assert accepted.status_code == 202, accepted.text
    batch_id = accepted.json()["batch_id"]
    (request,) = receiver.wait_for(where, 1)
    assert request.webhook_id == f"msg_{batch_id}_completed"
    assert verified(request, secret_of(service))
    assert request.json["status"] == "completed" and request.json["counts"]["succeeded"] == jobs
    assert request.json == service.http.get(f"/v1/batches/{batch_id}").json()


def test_a_batch_is_sent_once_complete_as_get_answers_it_and_its_items_each(
    service: Service, receiver: Receiver
):
    whole, each = path("ok"), path("ok")
    items = [{"text": f"item {i}", "webhook": receiver.url(each)} for i in range(3)]
    items.append({"text": "no webhook of its own"})
    response = service.http.post(
        "/v1/inference/batch", json={"items": items, "webhook": receiver.url(whole)}
    )
    batch_sent_once_complete(service, receiver, response, whole, jobs=4)
    assert len(receiver.wait_for(each, 3)) == 3
    time.sleep(1.5)  # looked at again: nothing more is sent
    assert len(receiver.at(whole)) == 1


def test_a_batch_file_is_sent_once_complete_when_its_request_names_a_webhook(
    service: Service, receiver: Receiver
):
    whole = path("ok")
    lines = [{"custom_id": f"line-{i}", "text": f"file item {i}"} for i in range(3)]
    response = service.http.post(
        "/v1/batches",
        params={"webhook": receiver.url(whole)},
        content="".join(json.dumps(line) + "\n" for line in lines).encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    batch_sent_once_complete(service, receiver, response, whole, jobs=3)


def test_a_batch_whose_filter_names_started_is_sent_when_it_starts_and_when_it_completes(
    service: Service, receiver: Receiver
):
    both, started_only = path("ok"), path("ok")
    body = {
        "items": [{"text": f"begun {i}"} for i in range(2)],
        "webhook": receiver.url(both),
        "webhook_events_filter": ["started", "completed"],
    }
    response = service.http.post("/v1/inference/batch", json=body)
    assert response.status_code == 202, response.text
    batch_id = response.json()["batch_id"]
    sent = receiver.wait_for(both, 2)
    assert {r.webhook_id for r in sent} == {f"msg_{batch_id}_started", f"msg_{batch_id}_completed"}
    assert all(verified(r, secret_of(service)) for r in sent)
    assert all(r.json["batch_id"] == batch_id for r in sent)
    # A file's batch, as a query parameter; started alone: nothing when it completes.
    file = service.http.post(
        "/v1/batches",
        params={"webhook": receiver.url(started_only), "webhook_events_filter": "started"},
        content=(json.dumps({"custom_id": "x", "text": "begun"}) + "\n").encode(),
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert file.status_code == 202, file.text
    file_batch = file.json()["batch_id"]
    (request,) = receiver.wait_for(started_only, 1)
    assert request.webhook_id == f"msg_{file_batch}_started"
    wait_until_completed(service, file_batch)
    time.sleep(1.5)  # looked at again after it completed: nothing more is sent
    assert len(receiver.at(started_only)) == 1


def wait_until_completed(service: Service, batch_id: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while service.http.get(f"/v1/batches/{batch_id}").json()["status"] != "completed":
        assert time.monotonic() < deadline, f"batch {batch_id} never completed"
        time.sleep(0.1)


def test_a_scheduled_retry_survives_a_restart_of_the_notifier_and_of_redis(
    make_service: ServiceFactory, receiver: Receiver, tmp_path
):
    from devstack.servers import embedded_redis

    with embedded_redis(tmp_path) as server:
        running = make_service(redis_url=server.url, **NOTIFIER_ENV)
        running.start_all(consumers=1, notifiers=1)
        where = path("busy/6")  # the retry is due 6 s after the first attempt
        job_id = submit(running, receiver.url(where))
        (first,) = receiver.wait_for(where, 1)
        timeline_types(running, job_id, "WebhookAttempted")  # the retry is in Redis
        running.kill("notifier")
        server.restart()  # Redis stops (its append-only file kept) and starts again
        running.start("notifier", NOTIFIER_NAME="notifier-after")
        _, second = receiver.wait_for(where, 2, timeout_s=30)
        assert second.webhook_id == first.webhook_id == f"msg_{job_id}_completed"
        assert second.at - first.at >= 5.5
        assert "WebhookDelivered" in timeline_types(running, job_id, "WebhookDelivered")
        running.stop_all()
