"""The Python client (client/, package `inferflow`) against a real InferFlow: every method,
typed problems, retries through 429 and a Redis outage without a second job, and a webhook
delivered by the real notifier verified with `verify_webhook`."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from inferflow import (
    AsyncClient,
    Client,
    Conflict,
    Invalid,
    NotFound,
    RetryPolicy,
    Unauthorized,
    verify_webhook,
)
from tests.e2e.conftest import ServiceFactory
from tests.e2e.harness import Service
from tests.e2e.receiver import Receiver

pytestmark = pytest.mark.e2e

SPAM = "limited time offer, click now"
# About 2 s of running (four attempts of 450 ms, each within INFERENCE_TIMEOUT_MS): a cancel
# sent right after finds it unfinished, even on a loaded machine.
SLOW = "[[sleep_ms:450]] [[transient:3]] see you at seven"


class Recording(httpx.HTTPTransport):
    """A real transport that notes each answer's status (or "error" for a failed send)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int | str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = super().handle_request(request)
        except httpx.TransportError:
            self.seen.append("error")
            raise
        self.seen.append(response.status_code)
        return response


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


@pytest.fixture(scope="module")
def service(make_service: ServiceFactory) -> Service:
    running = make_service(WEBHOOK_ALLOW_PRIVATE_NETWORKS="true", WEBHOOK_POLL_MS="20")
    running.start_all(consumers=2, notifiers=1)
    return running


@pytest.fixture(scope="module")
def client(service: Service) -> Iterator[Client]:
    with Client(service.url, service.admin_key) as found:
        yield found


def test_submit_waits_and_get_wait_and_events_read_the_job(client: Client):
    job = client.submit(SPAM, wait=30)
    assert job.status == "succeeded" and job.done
    assert job.result is not None and job.result.label == "spam"
    assert job.finished_at is not None and job.model_version
    assert client.get(job.job_id) == job
    assert client.wait(job.job_id, timeout=5) == job

    queued = client.submit("see you at seven", deadline=60)
    assert queued.status == "queued" and queued.result is None and not queued.done
    finished = client.wait(queued.job_id)
    assert finished.done and finished.deadline is not None

    live = [event.type for event in client.events(finished.job_id)]
    timeline = [event.type for event in client.events(finished.job_id, follow=False)]
    assert live == timeline
    assert timeline[0] == "JobRequested" and timeline[-1] == "JobSucceeded"


def test_the_same_idempotency_key_gives_back_the_same_job(client: Client):
    key = f"client-{uuid.uuid4()}"
    first = client.submit(SPAM, idempotency_key=key)
    again = client.submit(SPAM, idempotency_key=key)
    assert again.job_id == first.job_id
    assert again.replayed and not first.replayed
    with pytest.raises(Invalid) as reused:
        client.submit("another text", idempotency_key=key)
    assert reused.value.problem.name == "idempotency-key-reused"
    assert reused.value.status == 422


def test_cancel_and_its_conflict(client: Client):
    running = client.submit(SLOW)
    cancelled = client.cancel(running.job_id)
    assert cancelled.status == "cancelled" and cancelled.cancel_reason == "requested"
    assert client.cancel(running.job_id).status == "cancelled"  # again harmless
    done = client.submit(SPAM, wait=30)
    with pytest.raises(Conflict) as ended:
        client.cancel(done.job_id)
    assert ended.value.type == "urn:inferflow:problem:job-ended" and ended.value.status == 409


def test_problems_are_typed(service: Service, client: Client):
    with pytest.raises(NotFound) as missing:
        client.get(str(uuid.uuid4()))
    assert missing.value.status == 404
    with pytest.raises(Invalid) as blank:
        client.submit("   ")
    assert blank.value.problem.name == "validation-error"
    assert blank.value.problem.extra["errors"][0]["field"] == "body.text"
    with Client(service.url, "ifk_not_a_key") as stranger, pytest.raises(Unauthorized) as refused:
        stranger.get(str(uuid.uuid4()))
    assert refused.value.type == "urn:inferflow:problem:unauthenticated"


def test_submit_many_and_jobs_walk_every_page(service: Service, client: Client):
    texts = [f"{SPAM} {n}" if n % 2 else f"see you at {n}" for n in range(250)]
    many = client.submit_many([*texts, {"text": " ", "custom_id": "blank"}], chunk_size=200)
    assert len(many.batch_ids) == 2 and len(many.items) == 251
    assert [item.index for item in many.items] == list(range(251))
    assert [item.custom_id for item in many.rejected] == ["blank"]
    assert len(set(many.job_ids)) == 250
    for batch_id in many.batch_ids:
        assert client.wait_batch(batch_id, timeout=60).done
    listed = [job.job_id for b in many.batch_ids for job in client.jobs(batch_id=b, page_size=30)]
    assert sorted(listed) == sorted(many.job_ids)  # every job once, over 9 pages
    spam = list(client.jobs("succeeded", label="spam", batch_id=many.batch_ids[0]))
    assert spam and all(job.result and job.result.label == "spam" for job in spam)
    # The items' keys were made by the client: sending one again replays its job.
    first = many.items[0]
    again = client.submit_many([{"text": texts[0], "idempotency_key": first.idempotency_key}])
    assert again.items[0].status == "replayed" and again.items[0].job_id == first.job_id


def test_a_batch_file_and_its_objects(client: Client):
    body = (
        b"".join(
            b'{"custom_id": "m%d", "text": "%s %d"}\n' % (n, SPAM.encode(), n) for n in range(20)
        )
        + b'{"custom_id": "m3", "text": "twice"}\n'
    )
    key = f"file-{uuid.uuid4()}"
    accepted = client.submit_file(body, idempotency_key=key)
    assert (accepted.accepted, accepted.rejected) == (20, 1)
    assert accepted.bad_lines[0].line == 21
    assert accepted.bad_lines[0].error.name == "duplicate-custom-id"
    assert client.submit_file(body, idempotency_key=key).replayed == 20
    progress = list(client.batch_events(accepted.batch_id))
    assert progress[-1].done and progress[-1].counts.succeeded == 20
    assert client.batch(accepted.batch_id) == progress[-1]
    results = list(client.batch_results(accepted.batch_id))
    assert sorted(r.custom_id or "" for r in results) == sorted(f"m{n}" for n in range(20))
    assert all(r.status == "succeeded" and r.result for r in results)
    with pytest.raises(Conflict):
        client.cancel_batch(accepted.batch_id)


def test_the_async_client_does_the_same(service: Service):
    async def run() -> None:
        async with AsyncClient(service.url, service.admin_key) as client:
            job = await client.submit(SPAM, wait=30)
            assert job.status == "succeeded"
            assert await client.get(job.job_id) == job
            slow = await client.submit(SLOW)
            assert (await client.cancel(slow.job_id)).status == "cancelled"
            events = [event.type async for event in client.events(slow.job_id)]
            assert events[0] == "JobRequested" and events[-1] == "JobCancelled"
            many = await client.submit_many(["one", "two", "three"])
            batch = await client.wait_batch(many.batch_ids[0], timeout=60)
            assert batch.counts.total == 3 and batch.done
            listed = [j.job_id async for j in client.jobs(batch_id=batch.batch_id, page_size=2)]
            assert sorted(listed) == sorted(many.job_ids)
            results = [r async for r in client.batch_results(batch.batch_id)]
            assert len(results) == 3
            with pytest.raises(NotFound):
                await client.wait(str(uuid.uuid4()))

    asyncio.run(run())


def test_a_webhook_from_the_notifier_verifies(client: Client, receiver: Receiver):
    where = f"/ok/{uuid.uuid4().hex[:8]}"
    job = client.submit(SPAM, webhook=receiver.url(where))
    (delivery,) = receiver.wait_for(where, 1)
    secret = client.webhook_secret()
    body = verify_webhook(delivery.headers, delivery.body, secret)
    assert body["job_id"] == job.job_id and body["status"] == "succeeded"
    with pytest.raises(Exception, match="signature"):
        verify_webhook(delivery.headers, delivery.body + b" ", secret)


def test_429s_are_retried_after_retry_after_without_a_second_job(service: Service):
    tenant = f"slow-{uuid.uuid4().hex[:6]}"
    limits = {"requests_per_s": 2, "requests_burst": 1}
    assert service.http.put(f"/v1/admin/tenants/{tenant}/limits", json=limits).status_code == 200
    transport = Recording()
    with Client(service.url, service.new_key(tenant, "submit", "read"), transport=transport) as c:
        jobs = [c.submit(f"{SPAM} {n}") for n in range(4)]
        assert 429 in transport.seen
        assert transport.seen.count(202) == 4
        # Reading is limited too: lift the limit to read the jobs back at once.
        lifted = {"requests_per_s": 1000}
        assert (
            service.http.put(f"/v1/admin/tenants/{tenant}/limits", json=lifted).status_code == 200
        )
        ended = [c.wait(job.job_id, timeout=30) for job in jobs]
        assert all(job.done for job in ended)
        listed = list(c.jobs())
    assert sorted(job.job_id for job in listed) == sorted(job.job_id for job in jobs)


def test_a_submission_rides_out_a_redis_outage_as_one_job(make_service: ServiceFactory, tmp_path):
    from devstack.servers import embedded_redis

    with embedded_redis(tmp_path) as server:
        service: Service = make_service(redis_url=server.url, DEPENDENCY_TIMEOUT_MS="300")
        service.start("api")
        transport = Recording()
        policy = RetryPolicy(max_retries=40, initial_s=0.1, max_delay_s=1.0)
        client = Client(service.url, service.admin_key, retry=policy, transport=transport)
        server.kill()
        outcome: list[object] = []
        worker = threading.Thread(target=lambda: outcome.append(client.submit(SPAM)))
        worker.start()
        deadline = time.monotonic() + 20
        while 503 not in transport.seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert 503 in transport.seen
        server.restart()
        worker.join(timeout=60)
        client.close()
        (job,) = outcome
        assert transport.seen[-1] == 202
        requested = [f["job_id"] for _, f in service.log() if f["type"] == "JobRequested"]
        assert requested == [job.job_id]
