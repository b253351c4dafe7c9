"""The JSON Lines reader of POST /v1/batches: lines out of byte chunks cut anywhere."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable

import pytest

from api.batchfile import BadLine, Chunk, FileLimits, FileReader, Overflow, chunks

LIMITS = FileLimits(max_lines=100, max_line_bytes=200, max_bytes=10_000)


def line(custom_id: str, text: str = "hello") -> bytes:
    return json.dumps({"custom_id": custom_id, "text": text}, ensure_ascii=False).encode()


def read_all(data: Iterable[bytes], limits: FileLimits = LIMITS) -> list:
    reader = FileReader(limits)
    out = []
    for piece in data:
        out += reader.feed(piece)
    return out + reader.end()


def every_split(body: bytes) -> Iterable[list[bytes]]:
    for cut in range(len(body) + 1):
        yield [body[:cut], body[cut:]]


def good(reads: list) -> list[tuple[int, object]]:
    return [r for r in reads if isinstance(r, tuple)]


def bad(reads: list) -> dict[int, BadLine]:
    return {r.number: r for r in reads if isinstance(r, BadLine)}


def test_lines_are_numbered_and_parsed_whatever_chunks_they_come_in():
    body = line("a") + b"\n" + line("b", "café €") + b"\n" + line("c")
    expected = [(1, {"custom_id": "a", "text": "hello"}), (2, {"custom_id": "b", "text": "café €"})]
    expected.append((3, {"custom_id": "c", "text": "hello"}))
    for pieces in every_split(body):  # mid-line, mid-character, mid-newline
        assert read_all(pieces) == expected
    assert read_all([bytes([byte]) for byte in body]) == expected  # one byte at a time


def test_crlf_blank_lines_a_bom_and_a_missing_last_newline():
    body = b"\xef\xbb\xbf" + line("a") + b"\r\n\r\n   \n" + line("b") + b"\r\n\n" + line("c")
    reads = read_all([body])
    assert [(n, v["custom_id"]) for n, v in good(reads)] == [(1, "a"), (4, "b"), (6, "c")]
    assert not bad(reads)


def test_a_final_newline_ends_the_file_without_an_empty_line():
    assert [n for n, _ in good(read_all([line("a") + b"\n"]))] == [1]
    assert read_all([b""]) == []
    assert read_all([b"\n\n\r\n"]) == []


def test_bad_lines_are_reported_by_number_and_the_others_go_on():
    body = b"\n".join(
        [
            line("a"),
            b"{not json",
            b'{"custom_id": "x", "custom_id": "y", "text": "t"}',  # a member name repeated
            b'{"custom_id": "c", "text": "\xff"}',  # not UTF-8
            b"[" * 5000 + b"]" * 5000,
            line("d"),
            b"42",  # JSON, not an object: the item's judge refuses it, not the reader
        ]
    )
    reads = read_all([body], FileLimits(max_lines=100, max_line_bytes=20_000, max_bytes=10**6))
    assert [n for n, _ in good(reads)] == [1, 6, 7]
    problems = bad(reads)
    assert sorted(problems) == [2, 3, 4, 5]
    assert all(p.error["type"] == "urn:inferflow:problem:malformed-json" for p in problems.values())
    assert problems[2].error["detail"].startswith("line 2 is not valid JSON")
    assert "repeated" in problems[3].error["detail"]
    assert "UTF-8 (at byte" in problems[4].error["detail"]
    assert "nested too deeply" in problems[5].error["detail"]


def test_a_repeated_custom_id_is_a_bad_line_naming_the_first():
    body = b"\n".join([line("a"), line("b"), line("a", "other"), b'{"custom_id": 7}', line("7")])
    reads = read_all([body])
    assert [n for n, _ in good(reads)] == [1, 2, 4, 5]
    duplicate = bad(reads)[3]
    assert duplicate.custom_id == "a"
    assert duplicate.error["type"] == "urn:inferflow:problem:duplicate-custom-id"
    assert "line 1" in duplicate.error["detail"]


def test_a_line_over_the_limit_is_dropped_as_it_comes_and_the_next_is_read():
    long = b'{"custom_id": "long", "text": "' + b"x" * 500 + b'"}'
    body = line("a") + b"\n" + long + b"\n" + line("b") + b"\n" + long
    for size in (1, 7, 64, len(body)):
        pieces = [body[i : i + size] for i in range(0, len(body), size)]
        reader = FileReader(LIMITS)
        reads = []
        for piece in pieces:
            reads += reader.feed(piece)
            # never held past the limit (and a CR)
            assert len(reader._partial) <= LIMITS.max_line_bytes + 1
        reads += reader.end()
        assert [n for n, _ in good(reads)] == [1, 3]
        too_long = bad(reads)
        assert sorted(too_long) == [2, 4]
        assert too_long[2].error["type"] == "urn:inferflow:problem:line-too-long"
        assert "longer than 200 bytes" in too_long[2].error["detail"]


def test_a_line_of_exactly_the_limit_is_read():
    def exact(custom_id: str) -> bytes:
        return b'{"custom_id": "' + custom_id.encode() + b'", "text": "' + b"y" * 100 + b'"}'

    limits = FileLimits(max_lines=10, max_line_bytes=len(exact("a")), max_bytes=10_000)
    body = exact("a") + b"\r\n" + exact("b")
    for pieces in every_split(body):
        assert [n for n, _ in good(read_all(pieces, limits))] == [1, 2]


def test_the_file_stops_at_the_first_line_past_the_most_lines():
    body = b"\n".join([line(str(i)) for i in range(3)] + [b"", line("3"), line("4")])
    limits = FileLimits(max_lines=3, max_line_bytes=200, max_bytes=10_000)
    reads = read_all([body], limits)
    assert [n for n, _ in good(reads)] == [1, 2, 3]
    assert reads[-1] == Overflow(line=5, limit="lines")  # blank line 4 does not count
    exactly = b"\n".join(line(str(i)) for i in range(3)) + b"\n\n"
    assert not any(isinstance(r, Overflow) for r in read_all([exactly], limits))


def test_the_file_stops_at_its_most_bytes():
    body = b"\n".join(line(str(i)) for i in range(10)) + b"\n"
    one = len(line("0")) + 1
    limits = FileLimits(max_lines=100, max_line_bytes=200, max_bytes=one * 3 + 5)
    reader = FileReader(limits)
    reads = reader.feed(body[:50]) + reader.feed(body[50:]) + reader.end()
    assert [n for n, _ in good(reads)] == [1, 2, 3]
    assert reads[-1] == Overflow(line=4, limit="bytes")
    assert reader.feed(b"more") == []


async def _stream(pieces: Iterable[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


def _chunked(pieces: list[bytes], limits: FileLimits, lines: int) -> list[Chunk]:
    async def collect() -> list[Chunk]:
        return [chunk async for chunk in chunks(_stream(pieces), limits, lines)]

    return asyncio.run(collect())


def test_chunks_hold_at_most_the_lines_asked_for_with_their_bad_lines():
    body = b"\n".join([line(str(i)) for i in range(5)] + [b"oops"] + [line("5"), line("6")])
    found = _chunked([body[:33], body[33:]], LIMITS, 3)
    assert [chunk.numbers for chunk in found] == [[1, 2, 3], [4, 5, 7], [8]]
    assert [[b.number for b in chunk.bad] for chunk in found] == [[], [6], []]
    assert found[1].values[0] == {"custom_id": "3", "text": "hello"}
    assert all(chunk.overflow is None for chunk in found)


def test_a_chunk_is_ready_before_the_stream_ends():
    """A chunk is handed on as soon as it is full: the body is never read whole first."""

    async def run() -> list[str]:
        seen: list[str] = []

        async def stream() -> AsyncIterator[bytes]:
            yield line("a") + b"\n" + line("b") + b"\n"
            seen.append("second piece asked for")
            yield line("c") + b"\n"

        async for chunk in chunks(stream(), LIMITS, 2):
            seen.append(f"chunk {chunk.numbers}")
        return seen

    assert asyncio.run(run()) == ["chunk [1, 2]", "second piece asked for", "chunk [3]"]


def test_the_last_chunk_says_where_the_file_was_cut():
    body = b"\n".join(line(str(i)) for i in range(7))
    limits = FileLimits(max_lines=4, max_line_bytes=200, max_bytes=10_000)
    found = _chunked([body], limits, 3)
    assert [chunk.numbers for chunk in found] == [[1, 2, 3], [4]]
    assert found[-1].overflow == Overflow(line=5, limit="lines")


@pytest.mark.parametrize("pieces", [[], [b""], [b"\n", b"  \r\n"]])
def test_an_empty_file_has_no_chunk(pieces: list[bytes]):
    assert _chunked(pieces, LIMITS, 10) == []
