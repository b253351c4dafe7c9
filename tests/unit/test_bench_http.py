"""The load generator's HTTP/1.1 response parsing and request writing (bench/http.py)."""

from __future__ import annotations

import asyncio

import pytest

from bench.http import (
    ProtocolError,
    content_length,
    is_chunked,
    parse_head,
    read_reply,
    request_bytes,
)


def reply_from(raw: bytes, method: str = "GET"):
    async def read():
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        reply, reusable = await read_reply(reader, method)
        return reply, reusable, await reader.read()

    return asyncio.run(read())


# Heads


def test_the_head_gives_the_status_and_lower_case_headers():
    status, headers = parse_head(
        b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nLocation:  /v1/jobs/1 \r\n\r\n"
    )
    assert status == 202
    assert headers == {"content-type": "application/json", "location": "/v1/jobs/1"}


def test_a_status_line_without_a_reason_phrase_is_read():
    assert parse_head(b"HTTP/1.1 204\r\n\r\n") == (204, {})


def test_repeated_headers_are_joined():
    _, headers = parse_head(b"HTTP/1.1 200 OK\r\nVary: a\r\nvary: b\r\n\r\n")
    assert headers["vary"] == "a, b"


@pytest.mark.parametrize(
    "head",
    [
        b"HTTP/2 200 OK\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nName : value\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n: value\r\n\r\n",
    ],
)
def test_heads_that_are_not_http_1_1_responses_are_refused(head):
    with pytest.raises(ProtocolError):
        parse_head(head)


def test_content_length_is_read_and_repeated_equal_values_are_one():
    assert content_length({"content-length": "42"}) == 42
    assert content_length({"content-length": "7, 7"}) == 7
    assert content_length({}) is None


@pytest.mark.parametrize("value", ["7, 8", "-1", "1e3", ""])
def test_a_content_length_that_frames_nothing_clearly_is_refused(value):
    with pytest.raises(ProtocolError):
        content_length({"content-length": value})


def test_only_a_final_chunked_coding_means_chunked():
    assert is_chunked({"transfer-encoding": "gzip, Chunked"})
    assert not is_chunked({"transfer-encoding": "chunked, gzip"})
    assert not is_chunked({})


# Whole replies


def test_a_content_length_body_is_read_and_the_connection_stays_usable():
    raw = b'HTTP/1.1 200 OK\r\ncontent-length: 15\r\n\r\n{"status":"ok"}HTTP/1.1 next'
    reply, reusable, rest = reply_from(raw)
    assert reply.status == 200
    assert reply.json() == {"status": "ok"}
    assert reusable
    assert rest == b"HTTP/1.1 next"  # nothing of the next response was eaten


def test_a_chunked_body_is_joined_and_trailers_are_skipped():
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'4;ext=1\r\n{"a"\r\n3\r\n:1}\r\n0\r\nTrailer: x\r\n\r\nnext'
    )
    reply, reusable, rest = reply_from(raw)
    assert reply.json() == {"a": 1}
    assert reusable
    assert rest == b"next"


def test_a_bad_chunk_size_is_refused():
    with pytest.raises(ProtocolError):
        reply_from(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")


def test_interim_responses_are_skipped():
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}"
    reply, _, _ = reply_from(raw)
    assert (reply.status, reply.body) == (202, b"{}")


def test_no_content_has_no_body_whatever_the_headers_say():
    reply, reusable, rest = reply_from(b"HTTP/1.1 204 No Content\r\ncontent-length: 5\r\n\r\nnext")
    assert reply.body == b""
    assert reusable
    assert rest == b"next"


def test_a_head_request_gets_no_body():
    reply, _, rest = reply_from(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", method="HEAD")
    assert reply.body == b""
    assert rest == b""


def test_connection_close_makes_the_connection_unusable():
    raw = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\ncontent-length: 0\r\n\r\n"
    reply, reusable, _ = reply_from(raw)
    assert reply.status == 503
    assert not reusable


def test_a_body_without_length_runs_to_the_end_of_the_connection():
    reply, reusable, _ = reply_from(b"HTTP/1.1 200 OK\r\n\r\nall of this")
    assert reply.body == b"all of this"
    assert not reusable


def test_a_body_cut_short_is_an_error():
    with pytest.raises(asyncio.IncompleteReadError):
        reply_from(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort")


# Requests


def test_a_post_names_its_host_type_and_length():
    data = request_bytes(
        "POST", "/v1/inference", "127.0.0.1:8000", b'{"text":"hi"}', (("Prefer", "wait=5"),)
    )
    head, body = data.split(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"POST /v1/inference HTTP/1.1",
        b"Host: 127.0.0.1:8000",
        b"Content-Type: application/json",
        b"Content-Length: 13",
        b"Prefer: wait=5",
    ]
    assert body == b'{"text":"hi"}'


def test_a_get_has_no_body_headers():
    assert request_bytes("GET", "/v1/jobs/1?wait=10", "h:1", b"") == (
        b"GET /v1/jobs/1?wait=10 HTTP/1.1\r\nHost: h:1\r\n\r\n"
    )
