"""The load generator against real servers: a tiny local one, the reference app on Redis, and
a bench stack's API with the key the bench made for it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable

import httpx
import pytest
import redis

from bench import loadgen
from bench.clients import Plan, bearer, send
from bench.http import Connection
from bench.stack import reference_server, running_stack
from bench.tally import Tally
from tests.support import one_server


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: list) -> None:
    """Answers by path: /ok (with the connection's number and the request's header lines),
    /close, /slow, /hangup."""
    seen.append(writer)
    number = len(seen)
    try:
        while head := await reader.readuntil(b"\r\n\r\n"):
            lines = head.decode().split("\r\n")
            path = lines[0].split()[1]
            sizes = [
                line.split(":")[1] for line in lines if line.lower().startswith("content-length")
            ]
            length = int(sizes[0]) if sizes else 0
            await reader.readexactly(length)
            if path == "/hangup":
                break
            if path == "/slow":
                await asyncio.sleep(1)
            headers = [line for line in lines[1:] if line]
            body = json.dumps({"connection": number, "headers": headers}).encode()
            close = b"Connection: close\r\n" if path == "/close" else b""
            writer.write(b"HTTP/1.1 200 OK\r\n" + close)
            writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            if close:
                break
    except asyncio.IncompleteReadError:
        pass
    writer.close()


def with_server(
    test: Callable[[Connection, list], Awaitable[None]],
    headers: tuple[tuple[str, str], ...] = (),
) -> None:
    async def run() -> None:
        seen: list = []
        server = await asyncio.start_server(lambda r, w: _serve(r, w, seen), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conn = Connection("127.0.0.1", port, timeout_s=0.3, headers=headers)
        try:
            await test(conn, seen)
        finally:
            conn.close()
            server.close()

    asyncio.run(run())


def test_requests_share_one_keep_alive_connection():
    async def test(conn: Connection, seen: list) -> None:
        replies = [await conn.request("POST", "/ok", b'{"text":"x"}') for _ in range(3)]
        assert [r.json()["connection"] for r in replies] == [1, 1, 1]

    with_server(test)


def test_the_connections_headers_go_with_every_request_before_its_own():
    async def test(conn: Connection, seen: list) -> None:
        for _ in range(2):  # on a reopened connection too
            reply = await conn.request("GET", "/close", headers=(("Prefer", "wait=1"),))
            assert reply.json()["headers"][1:] == ["Authorization: Bearer ifk_k", "Prefer: wait=1"]

    with_server(test, bearer("ifk_k"))


def test_connection_close_is_obeyed_and_the_next_request_reconnects():
    async def test(conn: Connection, seen: list) -> None:
        assert (await conn.request("GET", "/close")).json()["connection"] == 1
        assert (await conn.request("GET", "/ok")).json()["connection"] == 2

    with_server(test)


def test_a_connection_the_server_closed_while_idle_is_reopened():
    async def test(conn: Connection, seen: list) -> None:
        await conn.request("GET", "/ok")
        seen[0].close()  # the server drops the idle keep-alive connection
        await asyncio.sleep(0.05)
        assert (await conn.request("GET", "/ok")).json()["connection"] == 2

    with_server(test)


def test_timeouts_and_hang_ups_are_counted_and_the_client_goes_on():
    async def test(conn: Connection, seen: list) -> None:
        tally = Tally()
        assert await send(conn, tally, "GET", "/slow") is None  # 1 s > the 0.3 s limit
        assert await send(conn, tally, "GET", "/hangup") is None
        reply = await send(conn, tally, "GET", "/ok")
        assert reply is not None
        assert reply.status == 200
        assert (tally.requests, tally.timeouts, sum(tally.errors.values())) == (3, 1, 1)
        assert len(seen) == 3  # neither failed connection was used again

    with_server(test)


STREAM = f"bench-reference-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def reference(redis_url: str):
    with reference_server(redis_url, stream=STREAM) as url:
        yield url


@one_server("the reference endpoint is a bare append to one server's stream")
def test_load_processes_drive_the_reference_endpoint(reference: str, redis_url: str):
    single = loadgen.run(
        Plan(reference, "submit", range(300), clients=6, path="/append", keep_ids=False), 2
    )
    batched = loadgen.run(
        Plan(reference, "batch", range(250), clients=2, path="/append_batch", batch_size=100)
    )

    assert (single.accepted_count, single.refused_count, single.failures) == (300, 0, 0)
    assert len(single.submit_s) == single.requests == 300
    assert single.cpu_s > 0
    assert (batched.accepted_count, batched.requests) == (250, 3)  # batches of 100, 100, 50
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.xlen(STREAM) == 1 + 300 + 250  # the warm-up append, then the load
    finally:
        client.close()


def test_a_bench_stack_makes_an_admin_key_and_its_load_sends_it(
    redis_url: str, postgres_url: str, tmp_path, monkeypatch
):
    # The session's servers, whatever they are: running_stack takes them from the environment.
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DATABASE_URL", postgres_url)
    monkeypatch.delenv("TEST_REDIS_CLUSTER", raising=False)
    with running_stack(tmp_path, roles=("api",)) as service:
        keyed = Plan(service.url, "submit", range(20), clients=2, api_key=service.api_key)
        batched = Plan(service.url, "batch", range(30), path="/v1/inference/batch",
                       batch_size=10, api_key=service.api_key)  # fmt: skip
        accepted, in_batches = loadgen.run(keyed, 2), loadgen.run(batched)
        keyless = loadgen.run(Plan(service.url, "submit", range(3), keep_ids=False))
        reads = [
            httpx.get(f"{service.url}/v1/jobs/{job_id}", headers=service.headers, timeout=10)
            for job_id in accepted.accepted[:3]
        ]
    assert (accepted.accepted_count, accepted.refused_count, accepted.failures) == (20, 0, 0)
    assert (in_batches.accepted_count, in_batches.refused_count) == (30, 0)
    assert dict(keyless.refused) == {401: 3}
    assert [r.status_code for r in reads] == [200, 200, 200]
