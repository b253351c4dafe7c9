"""What a request body must be before anything parses it: small enough, JSON, UTF-8."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from email.message import Message as MimeMessage
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import RefusedRequestError
from api.problems import problem

JSON_MEDIA_TYPE = "application/json"


class BodySizeLimit:
    """Pure ASGI middleware: 413 for a body over `max_bytes`, before any of it is parsed.

    A declared Content-Length over the limit is refused without reading a byte. Any other body
    (chunked, or a Content-Length within the limit) is read and counted up to the limit first,
    then replayed to the app, so the app never holds a part of an oversized body. A path given
    its own limit in `path_limits` (the batch submission) is held to that one instead. A path in
    `streamed_paths` (a batch file) is passed on as it arrives, after the declared length
    check: its route reads the body in pieces and counts it against the limit itself.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        path_limits: Mapping[str, int] | None = None,
        streamed_paths: frozenset[str] = frozenset(),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = dict(path_limits or {})
        self.streamed_paths = streamed_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        declared = _content_length(scope)
        if declared <= limit and scope["path"] in self.streamed_paths:
            await self.app(scope, receive, send)
            return
        messages = None if declared > limit else await self._read(receive, limit)
        if messages is None:
            await self._refuse(scope, receive, send, limit)
            return
        await self.app(scope, _replay(messages, receive), send)

    def _limit(self, scope: Scope) -> int:
        return self.path_limits.get(scope["path"], self.max_bytes)

    async def _read(self, receive: Receive, limit: int) -> list[Message] | None:
        """The body's messages, or None as soon as they add up to more than the limit."""
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":  # a disconnect: the app will see it
                return messages
            size += len(message.get("body", b""))
            if size > limit:
                return None
            if not message.get("more_body", False):
                return messages

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        detail = f"The request body is larger than {limit} bytes."
        response = problem(413, "content-too-large", "Content too large", detail)
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int:
    """The declared Content-Length, 0 when absent; the server has already rejected bad ones."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit():
            return int(value)
    return 0


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = deque(messages)

    async def replayed() -> Message:
        return pending.popleft() if pending else await receive()

    return replayed


def require_json_media_type(content_type: str | None) -> None:
    """415 unless the body is declared as `application/json` (charset, if any, UTF-8)."""
    mime = MimeMessage()
    mime["content-type"] = content_type or ""
    charset = str(mime.get_param("charset") or "utf-8").lower()
    if content_type and mime.get_content_type() == JSON_MEDIA_TYPE and charset in ("utf-8", "utf8"):
        return
    raise RefusedRequestError(
        "unsupported-media-type",
        "Unsupported media type",
        f"Send the body as {JSON_MEDIA_TYPE} (UTF-8); got {content_type or 'no Content-Type'}.",
        status=415,
    )


def require_json_text(body: bytes) -> None:
    """400 unless the body is one JSON text in UTF-8 (RFC 8259) with no repeated member names.

    FastAPI alone would also take UTF-16/32, lone surrogates and repeated names (the last wins).
    """
    if not body:
        raise _malformed("The body is empty; send a JSON object.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _malformed(f"The body is not valid UTF-8 (at byte {exc.start}).") from exc
    try:
        json.loads(text, object_pairs_hook=_unique_members)
    except RecursionError as exc:
        raise _malformed("The body is nested too deeply.") from exc
    except ValueError as exc:
        raise _malformed(f"The body is not valid JSON: {exc}.") from exc


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("a member name is repeated")
    return members


def _malformed(detail: str) -> RefusedRequestError:
    return RefusedRequestError("malformed-json", "Malformed JSON", detail)


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class JsonBodyRoute(APIRoute):
    """A route that checks the media type and the JSON text before FastAPI parses the body.

    Without it, FastAPI reads a non-JSON media type as raw bytes and answers a 422 about types.
    """

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        if self.body_field is None:  # a GET or DELETE of the same router: no body to check
            return handler

        async def checked(request: Request) -> Response:
            require_json_media_type(request.headers.get("content-type"))
            require_json_text(await request.body())
            return await handler(request)

        return checked
