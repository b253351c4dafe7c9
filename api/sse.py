"""Server-Sent Events (text/event-stream): the framing and a streaming response that keeps
itself alive.

The framing is FastAPI's own (fastapi.sse, installed with the API): its generator routes
(`response_class=EventSourceResponse`) cannot answer JSON and SSE on one path, which ours do by
the Accept header, so the routes build the response with `response` here instead.

How a route uses it:

    from api import sse

    @router.get("/v1/things/{id}/events")
    async def events(request: Request, ...) -> Response:
        if not sse.wanted(request.headers.get("accept")):
            return ...  # the JSON answer, as before
        after = sse.last_event_id(request.headers.get(sse.LAST_EVENT_ID))
        # Check everything that can fail (404, 503) before this line: once the response
        # starts, its status is sent and an error can only end the stream.
        async def frames() -> AsyncIterator[bytes]:
            async for thing in ...:            # stop when there is nothing more to say
                yield sse.event(thing.kind, thing.model_dump_json(), id=thing.id)
        return sse.response(frames(), life_s=sse.LIFE_S)

`response` sends a heartbeat comment whenever `heartbeat_s` passes without a frame (so that
proxies and load balancers do not close a quiet connection, and a dead client is noticed), ends
the stream after `life_s` (the client reconnects with Last-Event-ID: no connection is held for
ever), and closes the generator however the stream ends, so its `finally` blocks and `async
with` exits run. When the client goes away, the server's disconnect message cancels the stream
(ASGI spec < 2.4, uvicorn's), or the next write fails (>= 2.4): at most one heartbeat later.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator

from fastapi.sse import EventSourceResponse, format_sse_event

MEDIA_TYPE = "text/event-stream"
LAST_EVENT_ID = "Last-Event-ID"
# No cache may keep or merge a live stream; nginx must not buffer it (its own header).
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
HEARTBEAT_S = 15.0
# The longest a stream lasts before the client is asked to reconnect (it resumes with
# Last-Event-ID): so no connection, task or watch lives for ever, and a deploy drains.
LIFE_S = 300.0


def wanted(accept: str | None) -> bool:
    """Whether an Accept header value asks for an event stream (EventSource sends exactly
    `text/event-stream`); `text/event-stream;q=0` refuses it."""
    for item in (accept or "").split(","):
        media_type, *params = (part.strip() for part in item.split(";"))
        if media_type.lower() != MEDIA_TYPE:
            continue
        return not any(_is_zero_q(param) for param in params)
    return False


def _is_zero_q(param: str) -> bool:
    name, _, value = param.partition("=")
    if name.strip().lower() != "q":
        return False
    try:
        return float(value) == 0
    except ValueError:
        return False


def last_event_id(value: str | None) -> str | None:
    """The Last-Event-ID header's value, None when absent or empty (an EventSource that got no
    id yet sends none; the spec's "reset" is an empty id). What it means is the route's to
    say."""
    value = (value or "").strip()
    return value or None


def event(name: str, data: str, id: str) -> bytes:
    """One event: `name` for `event:`, `data` (JSON text, or any text: each of its lines
    becomes a `data:` line, and the client joins them with newlines) and `id` for `id:`, which
    the client sends back as Last-Event-ID when it reconnects."""
    if not id or any(char in id for char in "\r\n\0"):
        raise ValueError(f"an event id is one line of text: {id!r}")
    if not name or any(char in name for char in "\r\n"):
        raise ValueError(f"an event name is one line of text: {name!r}")
    return format_sse_event(data_str=data, event=name, id=id)


def comment(text: str) -> bytes:
    """A comment, which clients ignore: a heartbeat, or a note to someone reading the raw
    stream."""
    return format_sse_event(comment=text)


HEARTBEAT = comment("heartbeat")


def response(
    frames: AsyncIterable[bytes],
    heartbeat_s: float = HEARTBEAT_S,
    life_s: float | None = LIFE_S,
    headers: dict[str, str] | None = None,
) -> EventSourceResponse:
    """A 200 text/event-stream response that sends `frames` (built with `event`/`comment`)
    as they come, a heartbeat after every `heartbeat_s` without one, and ends when `frames`
    ends or `life_s` has passed (None: only when `frames` ends)."""
    body = keep_alive(frames, heartbeat_s, life_s)
    return EventSourceResponse(body, headers={**HEADERS, **(headers or {})})


async def keep_alive(
    frames: AsyncIterable[bytes], heartbeat_s: float, life_s: float | None
) -> AsyncIterator[bytes]:
    """`frames`, with a heartbeat whenever `heartbeat_s` passes without a frame, until they end
    or `life_s` has passed; `frames` is closed however this ends."""
    source = aiter(frames)
    loop = asyncio.get_running_loop()
    end_at = None if life_s is None else loop.time() + life_s
    # The next frame is awaited in a task of its own, so that a heartbeat's timeout does not
    # cancel the generator in the middle of its work.
    pending: asyncio.Future[bytes] | None = None
    try:
        while True:
            left_s = heartbeat_s if end_at is None else min(heartbeat_s, end_at - loop.time())
            if left_s <= 0:
                return
            if pending is None:
                pending = asyncio.ensure_future(anext(source))
            done, _ = await asyncio.wait({pending}, timeout=left_s)
            if not done:
                if end_at is None or loop.time() < end_at:
                    yield HEARTBEAT
                continue
            try:
                frame = pending.result()
            except StopAsyncIteration:
                return
            finally:
                pending = None
            yield frame
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()
