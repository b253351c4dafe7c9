"""The load generator against real servers: a tiny local one, and the reference app on Redis."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable

import pytest
import redis

from bench import loadgen
from bench.clients import Plan, send
from bench.http import Connection
from bench.stack import reference_server
from bench.tally import Tally


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: list) -> None:
    """Answers by path: /ok (with the connection's number), /close, /slow, /hangup."""
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
            body = json.dumps({"connection": number}).encode()
            close = b"Connection: close\r\n" if path == "/close" else b""
            writer.write(b"HTTP/1.1 200 OK\r\n" + close)
            writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            if close:
                break
    except asyncio.IncompleteReadError:
        pass
    writer.close()


def with_server(test: Callable[[Connection, list], Awaitable[None]]) -> None:
    async def run() -> None:
        seen: list = []
        server = await asyncio.start_server(lambda r, w: _serve(r, w, seen), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        conn = Connection("127.0.0.1", port, timeout_s=0.3)
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
