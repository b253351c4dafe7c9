"""The body gate without a server: the size middleware as plain ASGI, and the JSON checks."""

from __future__ import annotations

import asyncio
import json

import pytest

from api.errors import RefusedRequestError
from api.limits import BodySizeLimit, require_json_media_type, require_json_text

LIMIT = 1024


class App:
    """An ASGI app that reads the whole body and records it."""

    def __init__(self) -> None:
        self.body: bytes | None = None

    async def __call__(self, scope, receive, send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        self.body = body
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def run(chunks: list[bytes], content_length: int | None = None) -> tuple[App, list[dict], int]:
    """Send `chunks` through the middleware; the app, what was sent back, chunks consumed."""
    app, sent, consumed = App(), [], 0
    headers = [] if content_length is None else [(b"content-length", str(content_length).encode())]
    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}

    async def receive() -> dict:
        nonlocal consumed
        consumed += 1
        more = consumed < len(chunks)
        return {"type": "http.request", "body": chunks[consumed - 1], "more_body": more}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(BodySizeLimit(app, LIMIT)(scope, receive, send))
    return app, sent, consumed


def status(sent: list[dict]) -> int:
    return sent[0]["status"]


def test_a_streamed_body_within_the_limit_reaches_the_app_whole():
    app, sent, _ = run([b"a" * 512, b"b" * 512])
    assert status(sent) == 200
    assert app.body == b"a" * 512 + b"b" * 512


def test_a_streamed_body_over_the_limit_is_413_and_the_app_never_runs():
    chunks = [b"x" * 600] * 10
    app, sent, consumed = run(chunks)
    assert status(sent) == 413
    assert app.body is None
    assert consumed == 2, "reading stops as soon as the limit is passed"
    problem = json.loads(sent[1]["body"])
    assert problem["type"] == "urn:inferflow:problem:content-too-large"


def test_a_declared_length_over_the_limit_is_413_without_reading():
    app, sent, consumed = run([b"x" * 10], content_length=LIMIT + 1)
    assert status(sent) == 413
    assert consumed == 0 and app.body is None


@pytest.mark.parametrize(
    "value", ["application/json", "application/json; charset=UTF-8", "APPLICATION/JSON"]
)
def test_json_media_types_pass(value: str):
    require_json_media_type(value)


@pytest.mark.parametrize(
    "value",
    [None, "", "text/plain", "application/json-seq", "application/json; charset=utf-16", "json"],
)
def test_other_media_types_are_415(value: str | None):
    with pytest.raises(RefusedRequestError) as raised:
        require_json_media_type(value)
    assert raised.value.status == 415


@pytest.mark.parametrize(
    "body", [b"", b"\xff", b"{", b'{"a": 1, "a": 2}', b"[" * 100_000, b"NaN-ish", b"1" * 5000]
)
def test_bodies_that_are_not_utf8_json_are_400(body: bytes):
    with pytest.raises(RefusedRequestError) as raised:
        require_json_text(body)
    assert raised.value.status == 400
