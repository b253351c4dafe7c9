"""Reading a JSON Lines file (the body of POST /v1/batches) as it arrives, in chunks of lines.

The body comes as byte chunks that end anywhere, in the middle of a line or of a character;
lines are cut at LF (a CR before it is dropped), numbered from 1 as a text editor numbers them,
and each is parsed on its own: a line that is not UTF-8 JSON, too long, or names a custom_id an
earlier line named, is a bad line with its number and a problem detail, and the others go on.
Blank lines are skipped (they keep their numbers). What is held at any time is one unfinished
line (at most `max_line_bytes`, past which it is dropped as it comes, not kept) and the chunk
being filled; the custom_ids seen, to find a repeated one.

The file ends early, with `Chunk.overflow`, at its first line past `max_lines` lines that are
not blank, or at `max_bytes`: the chunk that ends there holds the lines before, and nothing
after is read.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from api.submission import item_problem

BOM = b"\xef\xbb\xbf"
# Every media type a JSON Lines file goes by; charset, if any, UTF-8.
MEDIA_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines")


@dataclass(frozen=True, slots=True)
class FileLimits:
    max_lines: int  # lines that are not blank
    max_line_bytes: int
    max_bytes: int


@dataclass(frozen=True, slots=True)
class BadLine:
    number: int
    custom_id: str | None
    error: dict[str, Any]  # a problem detail, as api.submission.item_problem makes them


@dataclass(frozen=True, slots=True)
class Overflow:
    """Where a file was cut: the first line not read, and the limit it was past."""

    line: int
    limit: str  # "lines" or "bytes"


@dataclass(slots=True)
class Chunk:
    """Lines read: the parsed ones, with their numbers, to judge as items; the bad ones."""

    numbers: list[int] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)
    overflow: Overflow | None = None

    def __bool__(self) -> bool:
        return bool(self.values or self.bad or self.overflow)


Read = tuple[int, Any] | BadLine | Overflow


class FileReader:
    """Bytes in, lines out: `feed` each chunk of the body, then `end`. Each returns what it
    completed: (number, parsed value) for a line that is JSON, a BadLine, and last an Overflow
    when a limit was reached, after which nothing more is read."""

    def __init__(self, limits: FileLimits) -> None:
        self._limits = limits
        self._partial = bytearray()
        self._skipping = False  # in a line too long: dropped up to its end
        self._number = 0  # lines ended so far
        self._lines = 0  # lines that are not blank
        self._bytes = 0
        self._custom_ids: dict[str, int] = {}
        self.overflow: Overflow | None = None

    def feed(self, data: bytes) -> list[Read]:
        if self.overflow is not None:
            return []
        out: list[Read] = []
        room = self._limits.max_bytes - self._bytes
        over = len(data) > room
        if over:
            data = data[:room]
        self._bytes += len(data)
        pieces = data.split(b"\n")
        for piece in pieces[:-1]:
            self._line(piece, out)
            if self.overflow is not None:
                return out
        self._hold(pieces[-1])
        if over:
            self._stop(self._number + 1, "bytes", out)
        return out

    def end(self) -> list[Read]:
        """The last line, when the file does not end with a newline."""
        if self.overflow is not None or not (self._partial or self._skipping):
            return []
        out: list[Read] = []
        self._line(b"", out)
        return out

    def _hold(self, piece: bytes) -> None:
        if self._skipping:
            return
        # One byte more than a line may have: the CR of a CRLF, not part of the line.
        if len(self._partial) + len(piece) > self._limits.max_line_bytes + 1:
            self._skipping = True
            self._partial.clear()
        else:
            self._partial += piece

    def _line(self, piece: bytes, out: list[Read]) -> None:
        """End the current line with `piece`, its last bytes."""
        self._number += 1
        number, too_long = self._number, self._skipping
        line = b""
        if not too_long:
            if self._partial:
                self._partial += piece
                line = bytes(self._partial)
            else:
                line = piece
        self._partial.clear()
        self._skipping = False
        if line.endswith(b"\r"):
            line = line[:-1]
        too_long = too_long or len(line) > self._limits.max_line_bytes
        if number == 1 and line.startswith(BOM):
            line = line[len(BOM) :]
        if not too_long and not line.strip():
            return  # blank: no item
        self._lines += 1
        if self._lines > self._limits.max_lines:
            self._stop(number, "lines", out)
            return
        if too_long:
            out.append(_too_long(number, self._limits.max_line_bytes))
            return
        out.append(self._parsed(number, line))

    def _parsed(self, number: int, line: bytes) -> tuple[int, Any] | BadLine:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            return _malformed(number, f"line {number} is not valid UTF-8 (at byte {exc.start})")
        try:
            value = json.loads(text, object_pairs_hook=_unique_members)
        except RecursionError:
            return _malformed(number, f"line {number} is nested too deeply")
        except ValueError as exc:
            return _malformed(number, f"line {number} is not valid JSON: {exc}")
        custom_id = value.get("custom_id") if isinstance(value, dict) else None
        if isinstance(custom_id, str):
            first = self._custom_ids.setdefault(custom_id, number)
            if first != number:
                detail = f"line {first} has this custom_id already: a file's custom_ids are unique"
                problem = item_problem("duplicate-custom-id", "Duplicate custom_id", detail)
                return BadLine(number, custom_id, problem)
        return number, value

    def _stop(self, line: int, limit: str, out: list[Read]) -> None:
        self.overflow = Overflow(line, limit)
        out.append(self.overflow)


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("a member name is repeated")
    return members


def _malformed(number: int, detail: str) -> BadLine:
    return BadLine(number, None, item_problem("malformed-json", "Malformed JSON", detail))


def _too_long(number: int, limit: int) -> BadLine:
    detail = f"line {number} is longer than {limit} bytes"
    return BadLine(number, None, item_problem("line-too-long", "Line too long", detail))


async def chunks(
    stream: AsyncIterable[bytes], limits: FileLimits, lines: int
) -> AsyncIterator[Chunk]:
    """The file of `stream` in chunks of up to `lines` parsed lines (and the bad lines met on
    the way), as the bytes arrive; the last chunk has `overflow` when the file was cut."""
    reader = FileReader(limits)
    chunk = Chunk()
    async for data in stream:
        for read in reader.feed(data):
            if _add(chunk, read) >= lines:
                yield chunk
                chunk = Chunk()
        if reader.overflow is not None:
            break
    else:
        for read in reader.end():
            _add(chunk, read)
    if chunk:
        yield chunk


def _add(chunk: Chunk, read: Read) -> int:
    """Put `read` in `chunk`; the number of values the chunk holds then."""
    if isinstance(read, BadLine):
        chunk.bad.append(read)
    elif isinstance(read, Overflow):
        chunk.overflow = read
    else:
        number, value = read
        chunk.numbers.append(number)
        chunk.values.append(value)
    return len(chunk.values)
