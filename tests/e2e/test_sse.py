"""GET /v1/jobs/{job_id}/events as Server-Sent Events, through the real processes: streams that
open before the job runs, resume with Last-Event-ID, end at the terminal event; the JSON form
unchanged; who may read. And the lane readers the streams share, on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import SimpleNamespace

import httpx
import pytest

from api.lanetails import LaneTails, followed
from domain.cancellation import CancelReason
from domain.events import JobCancelled, JobRequested, JobStarted
from domain.ids import new_job_id, partition_of
from eventlog.connection import connect_async
from eventlog.entries import stream_fields
from eventlog.names import Names
from eventlog.submission import indexed_at
from tests.e2e.conftest import ServiceFactory
from tests.e2e.harness import TERMINAL, Service
from tests.unit.test_sse import Frame, frames

pytestmark = pytest.mark.e2e

SSE = {"Accept": "text/event-stream"}
TERMINAL_TYPES = {"JobSucceeded", "JobFailed", "JobCancelled"}
# Each attempt sleeps: a stream opened at submission is open while the job runs.
SLOW_TEXT = "[[sleep_ms:1500]] claim your free prize now"
RETRIED_TEXT = "[[sleep_ms:300]] [[transient:2]] lunch at noon?"
# Far above what any stream here needs; a stream that did not end would hit it.
READ_TIMEOUT_S = 20


@pytest.fixture(scope="module")
def running(make_service: ServiceFactory) -> Service:
    """Projector, two consumers and the API; inference may take seconds (SLOW_TEXT)."""
    service = make_service(INFERENCE_TIMEOUT_MS="5000")
    service.start_all(consumers=2)
    return service


def events_of(frames_: Iterator[Frame]) -> Iterator[Frame]:
    return (frame for frame in frames_ if frame.is_event)


def stream(client: httpx.Client, job_id: str, last_event_id: str | None = None) -> httpx.Response:
    """The response of a stream request read to its end (only for streams that end)."""
    headers = {**SSE, **({"Last-Event-ID": last_event_id} if last_event_id else {})}
    return client.get(f"/v1/jobs/{job_id}/events", headers=headers, timeout=READ_TIMEOUT_S)


def read_events(response: httpx.Response) -> list[Frame]:
    return list(events_of(frames(response.text.split("\n"))))


def timeline(service: Service, job_id: str) -> list[dict]:
    response = service.http.get(f"/v1/jobs/{job_id}/events")
    assert response.status_code == 200, response.text
    return response.json()["events"]


def assert_matches_timeline(events: list[Frame], expected: list[dict]) -> None:
    assert [frame.json() for frame in events] == expected
    assert [frame.id for frame in events] == [event["entry_id"] for event in expected]
    assert [frame.event for frame in events] == [event["type"] for event in expected]


# A job's stream


def test_a_stream_opened_at_submission_sends_every_event_as_it_happens_then_ends(
    running: Service,
):
    job_id = running.submit(SLOW_TEXT).json()["job_id"]
    received: list[Frame] = []
    status_when_started = None
    with running.http.stream(
        "GET", f"/v1/jobs/{job_id}/events", headers=SSE, timeout=READ_TIMEOUT_S
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-accel-buffering"] == "no"
        for frame in events_of(frames(response.iter_lines())):
            received.append(frame)
            if frame.event == "JobStarted":
                # The inference still sleeps: this event came while the job ran.
                status_when_started = running.http.get(f"/v1/jobs/{job_id}").json()["status"]
    # The loop ended: the server closed the stream after the terminal event.
    assert status_when_started not in TERMINAL
    assert [frame.event for frame in received] == ["JobRequested", "JobStarted", "JobSucceeded"]
    running.wait_terminal(job_id)
    assert_matches_timeline(received, timeline(running, job_id))


def test_events_between_attempts_arrive_in_order(running: Service):
    job_id = running.submit(RETRIED_TEXT).json()["job_id"]
    received = read_events(stream(running.http, job_id))
    types = [frame.event for frame in received]
    assert types == ["JobRequested", "JobStarted", "JobRetrying", "JobRetrying", "JobSucceeded"]
    ids = [tuple(map(int, str(frame.id).split("-"))) for frame in received]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    running.wait_terminal(job_id)
    assert_matches_timeline(received, timeline(running, job_id))


def test_a_reconnect_with_last_event_id_gets_exactly_the_rest(running: Service):
    job_id = running.submit(RETRIED_TEXT).json()["job_id"]
    with running.http.stream(
        "GET", f"/v1/jobs/{job_id}/events", headers=SSE, timeout=READ_TIMEOUT_S
    ) as response:
        first = next(events_of(frames(response.iter_lines())))
    # The connection is dropped while the job runs; the client resumes after what it got.
    assert first.event == "JobRequested" and first.id
    rest = read_events(stream(running.http, job_id, first.id))
    assert rest and rest[-1].event in TERMINAL_TYPES
    running.wait_terminal(job_id)
    whole = [first, *rest]
    assert len({frame.id for frame in whole}) == len(whole)
    assert_matches_timeline(whole, timeline(running, job_id))


def test_resuming_from_any_event_sends_the_ones_after_it(running: Service):
    job_id = running.submit("[[transient:1]] meeting moved").json()["job_id"]
    running.wait_terminal(job_id)
    expected = timeline(running, job_id)
    for cut, event in enumerate(expected[:-1]):
        rest = read_events(stream(running.http, job_id, event["entry_id"]))
        assert_matches_timeline(rest, expected[cut + 1 :])


def test_a_terminal_jobs_stream_sends_all_and_ends_at_once(running: Service):
    job_id = running.submit("free money, click here").json()["job_id"]
    running.wait_terminal(job_id)
    response = stream(running.http, job_id)
    assert response.status_code == 200
    received = read_events(response)
    assert received[0].event == "JobRequested" and received[-1].event in TERMINAL_TYPES
    assert_matches_timeline(received, timeline(running, job_id))


def test_a_failed_job_ends_its_stream_too(running: Service):
    job_id = running.submit("[[permanent]] bad input").json()["job_id"]
    received = read_events(stream(running.http, job_id))
    assert [frame.event for frame in received] == ["JobRequested", "JobStarted", "JobFailed"]


def test_resuming_after_the_terminal_event_is_no_content(running: Service):
    job_id = running.submit("see you soon").json()["job_id"]
    running.wait_terminal(job_id)
    last = timeline(running, job_id)[-1]
    response = stream(running.http, job_id, last["entry_id"])
    # 204 tells an EventSource, which reconnects whenever a stream ends, to stop.
    assert response.status_code == 204 and response.content == b""


def test_many_streams_of_one_lane_each_get_their_own_job(running: Service):
    job_ids = [running.submit(f"{n} [[sleep_ms:50]] hello").json()["job_id"] for n in range(12)]

    def follow(job_id: str) -> list[Frame]:
        return read_events(stream(running.http, job_id))

    with ThreadPoolExecutor(len(job_ids)) as pool:
        streams = list(pool.map(follow, job_ids))
    for job_id, received in zip(job_ids, streams, strict=True):
        running.wait_terminal(job_id)
        assert_matches_timeline(received, timeline(running, job_id))


@pytest.fixture(scope="module")
def idle(make_service: ServiceFactory) -> Service:
    """No consumer: a job stays queued until something else ends it."""
    service = make_service()
    service.start("projector")
    service.start("api")
    return service


def cancel_in_the_log(service: Service, job_id: str) -> None:
    """Append the job's JobCancelled to its lane, as a cancel does."""
    client = service.redis()
    try:
        _requested_at, lane = indexed_at(str(client.get(service.names.job(job_id))))
        event = JobCancelled(
            job_id=job_id, occurred_at=now(), reason=CancelReason.REQUESTED, by="test"
        )
        lane_stream = service.names.lane(partition_of(job_id), lane)
        client.xadd(lane_stream, stream_fields(event))  # type: ignore[arg-type]
    finally:
        client.close()


def test_a_cancelled_job_ends_its_stream_with_job_cancelled(idle: Service):
    job_id = idle.submit("never to run").json()["job_id"]
    received: list[Frame] = []
    with idle.http.stream(
        "GET", f"/v1/jobs/{job_id}/events", headers=SSE, timeout=READ_TIMEOUT_S
    ) as response:
        for frame in events_of(frames(response.iter_lines())):
            received.append(frame)
            if frame.event == "JobRequested":
                cancel_in_the_log(idle, job_id)
    assert [frame.event for frame in received] == ["JobRequested", "JobCancelled"]
    assert received[-1].json()["payload"]["reason"] == "requested"
    assert idle.wait_terminal(job_id)["status"] == "cancelled"
    assert_matches_timeline(received, timeline(idle, job_id))


# The JSON form and bad requests


@pytest.mark.parametrize("accept", [None, "application/json", "*/*", "text/event-stream;q=0"])
def test_without_asking_for_a_stream_the_answer_is_the_json_timeline(
    running: Service, accept: str | None
):
    job_id = running.submit("the json timeline").json()["job_id"]
    running.wait_terminal(job_id)
    headers = {"Accept": accept} if accept else {}
    response = running.http.get(f"/v1/jobs/{job_id}/events", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"job_id", "events"} and body["job_id"] == job_id
    assert body["events"][0]["type"] == "JobRequested"
    fields = {"entry_id", "type", "schema_version", "occurred_at", "consumer", "attempt"}
    assert all(set(event) == fields | {"payload"} for event in body["events"])


@pytest.mark.parametrize("bad", ["yesterday", "1-2-3", "-1", "12"])
def test_a_malformed_last_event_id_is_400(running: Service, bad: str):
    job_id = running.submit("a bad resume").json()["job_id"]
    response = stream(running.http, job_id, bad)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith("invalid-last-event-id")


@pytest.mark.parametrize(
    "job_id", [new_job_id(), "not-a-uuid", "01A2222C-2F5B-772F-B08B-C988CDC0BB63"]
)
def test_an_unknown_jobs_stream_is_404(running: Service, job_id: str):
    response = stream(running.http, job_id)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")


# Who may read


@pytest.fixture(scope="module")
def a_job(running: Service) -> str:
    job_id = running.submit("whose job is this").json()["job_id"]
    running.wait_terminal(job_id)
    return job_id


def test_no_key_is_401(running: Service, a_job: str):
    response = stream(running.client(None), a_job)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_wrong_key_is_401(running: Service, a_job: str):
    response = stream(running.client("ifk_not-a-real-key"), a_job)
    assert response.status_code == 401


def test_a_key_without_read_is_403(running: Service, a_job: str):
    client = running.client(running.new_key("default", "submit"))
    response = stream(client, a_job)
    assert response.status_code == 403
    assert response.json()["scope"] == "read"


def test_another_tenants_job_is_404_like_no_job(running: Service):
    owner = running.client_of("sse-owner")
    job_id = owner.post("/v1/inference", json={"text": "mine"}).json()["job_id"]
    assert stream(owner, job_id).status_code == 200  # the owner's stream ends with the job
    stranger = running.client_of("sse-stranger")
    response = stream(stranger, job_id)
    unknown_id = new_job_id()
    unknown = stream(stranger, unknown_id)
    assert response.status_code == unknown.status_code == 404
    as_unknown = unknown.json() | {"detail": unknown.json()["detail"].replace(unknown_id, job_id)}
    assert response.json() == as_unknown
    assert stream(stranger, job_id, "1-0").status_code == 404


# The shared lane readers, on a real Redis


def test_followers_of_one_lane_share_a_reader_and_miss_nothing(
    redis_url: str, redis_cluster: bool, names: Names
) -> None:
    async def scenario() -> None:
        client = connect_async(redis_url, redis_cluster)
        stream_key = names.events(0)
        a, b = new_job_id(), new_job_id()

        async def append(event: object) -> str:
            return str(await client.xadd(stream_key, stream_fields(event)))  # type: ignore[arg-type]

        def started(job_id: str) -> JobStarted:
            return JobStarted(job_id=job_id, occurred_at=now(), consumer="c", attempt=1)

        try:
            first = await append(
                JobRequested(job_id=a, occurred_at=now(), text="x", model_version="m")
            )
            tails = LaneTails(client, 2.0)
            with tails.follow(stream_key, a, first) as follow_a:
                await append(started(b))  # another job's: not handed to a's follower
                await append(started(a))
                got_a = await asyncio.wait_for(follow_a.next(), 5)
                assert [e[1]["job_id"] for e in got_a] == [a]
                # A second follower joins the running reader (which is ahead of `first`):
                # it learns where the reader was, and reads what lies before that itself.
                with tails.follow(stream_key, b, first) as follow_b:
                    assert len(tails) == 1 and follow_b.tail is follow_a.tail
                    assert follow_b.joined_at == follow_a.tail.cursor != first
                    # Its own read covers what the reader had passed: b's first event.
                    svc = SimpleNamespace(redis=client, timeout_s=2.0)
                    events_of_b = followed(svc, follow_b, b, first)  # type: ignore[arg-type]
                    gap = await anext(events_of_b)
                    assert [(e.type, e.attempt) for e in gap] == [("JobStarted", 1)]
                    await events_of_b.aclose()
                    later = await append(started(b))
                    got_b = await asyncio.wait_for(follow_b.next(), 5)
                    assert [e[0] for e in got_b] == [later]
            assert len(tails) == 0  # the last follower gone, the reader stops
        finally:
            await client.delete(stream_key)
            await client.aclose()

    asyncio.run(scenario())


def now() -> datetime:
    return datetime.now(UTC)
