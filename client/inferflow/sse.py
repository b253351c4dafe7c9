"""Reading Server-Sent Events (the HTML standard's event stream format) line by line."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    event: str
    data: str
    id: str | None


class Parser:
    """Feed it the stream's lines (without their line ends); it returns each whole message
    when the blank line ending it arrives. Comments (heartbeats) are dropped."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> Message | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None

    def _dispatch(self) -> Message | None:
        if not self._data and not self._event:
            return None
        message = Message(self._event or "message", "\n".join(self._data), self._id)
        self._event, self._data = "", []
        return message
