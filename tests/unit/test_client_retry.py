"""The client's retry policy: which answers are retried, after how long, and that a retried
submission keeps its Idempotency-Key (so the server can never make a second job of it)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime

import httpx
import pytest

from inferflow import AsyncClient, Client, NotFound, RateLimited, RetryPolicy, Unavailable
from inferflow.retrying import retry_after

NOW = datetime(2026, 12, 7, 1, 0, 0, tzinfo=UTC)


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after("3") == 3.0
    assert retry_after(" 0 ") == 0.0
    assert retry_after("Mon, 07 Dec 2026 01:00:05 GMT", now=NOW) == 5.0
    assert retry_after("Mon, 07 Dec 2026 00:59:00 GMT", now=NOW) == 0.0  # already past
    assert retry_after("soon") is None
    assert retry_after(None) is None


def _answer(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, headers=headers, request=httpx.Request("GET", "http://x/"))


def test_the_policy_retries_what_says_later_and_nothing_else():
    policy = RetryPolicy(max_retries=3, initial_s=1.0, max_delay_s=10.0)
    assert policy.delay(0, _answer(503, **{"Retry-After": "2"})) == 2.0
    assert policy.delay(0, _answer(429, **{"Retry-After": "1"})) == 1.0
    assert 0.5 <= policy.delay(1, _answer(503)) <= 2.0  # no Retry-After: backoff
    assert 0.5 <= policy.delay(0, None) <= 1.0  # a connection error: backoff
    # A 429 without Retry-After never passes (a batch larger than the burst).
    assert policy.delay(0, _answer(429)) is None
    assert policy.delay(0, _answer(503, **{"Retry-After": "60"})) is None  # past max_delay_s
    assert policy.delay(0, _answer(422)) is None
    assert policy.delay(0, _answer(500)) is None
    assert policy.delay(3, _answer(503, **{"Retry-After": "0"})) is None  # retries used up


def test_backoff_grows_and_is_capped():
    policy = RetryPolicy(initial_s=1.0, max_delay_s=4.0)
    assert [max(policy.backoff(n) for _ in range(50)) <= 2.0**n for n in range(3)] == [True] * 3
    assert all(policy.backoff(10) <= 4.0 for _ in range(50))


PROBLEM = "application/problem+json"


def _problem(status: int, name: str, **headers: str) -> httpx.Response:
    body = {
        "type": f"urn:inferflow:problem:{name}",
        "title": name,
        "status": status,
        "detail": f"{name} here",
    }
    return httpx.Response(status, json=body, headers={"Content-Type": PROBLEM, **headers})


def test_a_submission_is_retried_with_one_idempotency_key_through_503_and_a_dead_connection():
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return _problem(503, "dependency-unavailable", **{"Retry-After": "0"})
        if len(seen) == 2:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(202, json={"job_id": "j-1", "status": "queued"})

    policy = RetryPolicy(initial_s=0.001)
    with Client("http://api", "k", retry=policy, transport=httpx.MockTransport(answer)) as client:
        job = client.submit("hello")
    assert job.job_id == "j-1"
    keys = {request.headers["Idempotency-Key"] for request in seen}
    assert len(seen) == 3 and len(keys) == 1
    assert seen[0].headers["Authorization"] == "Bearer k"


def test_problems_are_raised_as_their_family_with_type_and_status():
    answers = iter([_problem(404, "http-404"), _problem(429, "rate-limited")])
    transport = httpx.MockTransport(lambda request: next(answers))
    with Client("http://api", transport=transport) as client:
        with pytest.raises(NotFound) as missing:
            client.get("nope")
        assert missing.value.type == "urn:inferflow:problem:http-404"
        assert missing.value.status == 404
        assert missing.value.detail == "http-404 here"
        with pytest.raises(RateLimited) as limited:  # no Retry-After: not retried
            client.get("busy")
        assert limited.value.problem.name == "rate-limited"


def test_retries_run_out_into_the_problem():
    transport = httpx.MockTransport(lambda r: _problem(503, "not-ready", **{"Retry-After": "0"}))
    policy = RetryPolicy(max_retries=2)
    with (
        Client("http://api", retry=policy, transport=transport) as c,
        pytest.raises(Unavailable) as down,
    ):
        c.get("j")
    assert down.value.retry_after == 0.0


def test_the_client_imports_nothing_of_the_server():
    server = [
        "api",
        "consumer",
        "projector",
        "notifier",
        "readmodel",
        "eventlog",
        "domain",
        "runtime",
        "classifier",
        "devstack",
    ]
    probe = f"import sys, inferflow.cli; print([m for m in {server} if m in sys.modules])"
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert found.stdout.strip() == "[]", found.stderr


def test_the_async_client_retries_the_same_way():
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return _problem(429, "rate-limited", **{"Retry-After": "0"})
        return httpx.Response(202, json={"job_id": "j-2", "status": "queued"})

    async def run() -> str:
        transport = httpx.MockTransport(answer)
        async with AsyncClient("http://api", transport=transport) as client:
            return (await client.submit("hello", idempotency_key="mine")).job_id

    assert asyncio.run(run()) == "j-2"
    assert [r.headers["Idempotency-Key"] for r in seen] == ["mine", "mine"]
