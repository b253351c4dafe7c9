"""Server-Sent Events framing and the keep-alive stream (api.sse), read back with a parser that
follows the HTML standard's event stream interpretation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field

import pytest

from api import sse


@dataclass
class Frame:
    """One dispatched event, or a block of comments only."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def is_event(self) -> bool:
        return bool(self.data) or self.event != "message"

    def json(self) -> object:
        return json.loads(self.data)


def frames(lines: Iterable[str]) -> Iterator[Frame]:
    """The frames of an event stream given as its lines (without their line ends), each as
    soon as its blank line comes: so a test can read a live stream frame by frame."""
    current, data = Frame(), []
    for line in lines:
        if line == "":
            if data or current.comments or current.event != "message":
                current.data = "\n".join(data)
                yield current
            current, data = Frame(), []
            continue
        if line.startswith(":"):
            current.comments.append(line[1:].removeprefix(" "))
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            current.event = value
        elif name == "id":
            current.id = value


def parse_bytes(raw: bytes) -> list[Frame]:
    return list(frames(raw.decode().replace("\r\n", "\n").replace("\r", "\n").split("\n")))


def test_an_event_has_its_name_json_data_and_id() -> None:
    body = {"type": "JobStarted", "payload": {"attempt": 1}}
    raw = sse.event("JobStarted", json.dumps(body), id="1700000000000-3")
    assert raw.endswith(b"\n\n")
    [frame] = parse_bytes(raw)
    assert (frame.event, frame.id, frame.json()) == ("JobStarted", "1700000000000-3", body)


@pytest.mark.parametrize("data", ["one\ntwo", "one\r\ntwo\rthree", "trailing\n", "", "a\n\nb"])
def test_multi_line_data_comes_back_whole(data: str) -> None:
    raw = sse.event("note", data, id="1-0")
    # Every line of the data is a data: line of its own: none can end the event early.
    assert raw.count(b"\n\n") == 1
    [frame] = parse_bytes(raw)
    assert frame.data == data.replace("\r\n", "\n").replace("\r", "\n")


@pytest.mark.parametrize("bad_id", ["", "1-0\n2-0", "1-0\r", "a\0b"])
def test_an_id_is_one_line(bad_id: str) -> None:
    with pytest.raises(ValueError):
        sse.event("JobStarted", "{}", id=bad_id)


def test_an_event_name_is_one_line() -> None:
    with pytest.raises(ValueError):
        sse.event("Job\nStarted", "{}", id="1-0")


def test_a_comment_is_no_event() -> None:
    assert sse.HEARTBEAT == b": heartbeat\n\n"
    [beat] = parse_bytes(sse.HEARTBEAT)
    assert beat.comments == ["heartbeat"] and not beat.is_event
    [note] = parse_bytes(sse.comment("two\nlines"))
    assert note.comments == ["two", "lines"] and not note.is_event


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [
        ("text/event-stream", True),
        ("application/json, text/event-stream;q=0.5", True),
        ("Text/Event-Stream; charset=utf-8", True),
        ("text/event-stream;q=0", False),
        ("text/event-stream; q=0.0", False),
        ("application/json", False),
        ("*/*", False),
        ("", False),
        (None, False),
    ],
)
def test_the_accept_header_asks_for_a_stream(accept: str | None, wanted: bool) -> None:
    assert sse.wanted(accept) is wanted


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("1700000000000-0", "1700000000000-0"),
        (" 5-1 ", "5-1"),
    ],
)
def test_last_event_id(header: str | None, expected: str | None) -> None:
    assert sse.last_event_id(header) == expected


def test_the_response_has_the_stream_headers() -> None:
    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""

    response = sse.response(nothing())
    assert response.media_type == "text/event-stream"
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"


async def _collect(stream: AsyncIterator[bytes]) -> list[bytes]:
    return [frame async for frame in stream]


def test_heartbeats_fill_the_silences_and_frames_pass_in_order() -> None:
    async def slow() -> AsyncIterator[bytes]:
        yield sse.event("a", "1", id="1-0")
        await asyncio.sleep(0.25)
        yield sse.event("b", "2", id="2-0")

    sent = asyncio.run(_collect(sse.keep_alive(slow(), heartbeat_s=0.05, life_s=None)))
    events = [frame for frame in sent if frame != sse.HEARTBEAT]
    assert events == [sse.event("a", "1", id="1-0"), sse.event("b", "2", id="2-0")]
    beats_between = sent.index(events[1]) - sent.index(events[0]) - 1
    assert beats_between >= 2
    assert sent[-1] == events[1]  # the stream ends when the frames end


def test_the_stream_ends_after_its_life_and_closes_the_generator() -> None:
    closed = []

    async def endless() -> AsyncIterator[bytes]:
        try:
            yield sse.event("a", "1", id="1-0")
            await asyncio.Event().wait()
            yield b"never"
        finally:
            closed.append(True)

    sent = asyncio.run(_collect(sse.keep_alive(endless(), heartbeat_s=0.05, life_s=0.2)))
    assert sent[0] == sse.event("a", "1", id="1-0")
    assert b"never" not in sent
    assert set(sent[1:]) <= {sse.HEARTBEAT}
    assert closed == [True]


def test_a_client_gone_closes_the_generator() -> None:
    closed = []

    async def endless() -> AsyncIterator[bytes]:
        try:
            while True:
                await asyncio.sleep(0.01)
                yield b": tick\n\n"
        finally:
            closed.append(True)

    async def read_two_then_go() -> None:
        stream = sse.keep_alive(endless(), heartbeat_s=1.0, life_s=None)
        # As the server does when the client disconnects: the reading task is cancelled.
        reader = asyncio.ensure_future(_collect(stream))
        await asyncio.sleep(0.05)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader

    asyncio.run(read_two_then_go())
    assert closed == [True]


def test_an_error_of_the_frames_ends_the_stream_with_it() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b": one\n\n"
        raise RuntimeError("gone")

    with pytest.raises(RuntimeError, match="gone"):
        asyncio.run(_collect(sse.keep_alive(broken(), heartbeat_s=1.0, life_s=None)))
