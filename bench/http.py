"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for generating load.

httpx spends more CPU per request than the server it is measuring, so on a shared 2-core box the
load generator, not the service, set the limit. This client writes the request bytes itself and
reads only what a JSON API answers: a status line, headers, and a body framed by Content-Length
(chunked and read-to-close bodies are understood too, so a surprising answer is never misread).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

HEAD_END = b"\r\n\r\n"
# Answers that never carry a body, whatever their headers say (RFC 9112 section 6.3).
BODILESS = frozenset({204, 304})


class ProtocolError(Exception):
    """The server's bytes are not an HTTP/1.1 response this client can frame."""


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status code and headers of a response head (status line and header lines)."""
    lines = head.rstrip(b"\r\n").split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise ProtocolError(f"bad status line {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        # Whitespace before the colon is forbidden: it is how response splitting hides.
        if not colon or not name or name != name.strip():
            raise ProtocolError(f"bad header line {line!r}")
        key, text = name.decode("latin-1").lower(), value.strip().decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return int(code), headers


def content_length(headers: dict[str, str]) -> int | None:
    """The declared body length; None when the headers declare none."""
    raw = headers.get("content-length")
    if raw is None:
        return None
    values = {part.strip() for part in raw.split(",")}
    if len(values) != 1 or not (value := values.pop()).isdigit():
        raise ProtocolError(f"bad Content-Length {raw!r}")
    return int(value)


def is_chunked(headers: dict[str, str]) -> bool:
    codings = headers.get("transfer-encoding", "")
    return codings.rsplit(",", 1)[-1].strip().lower() == "chunked"


async def read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        line = await reader.readuntil(b"\r\n")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size {line!r}") from None
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailer fields: nothing here needs them
            return b"".join(parts)
        chunk = await reader.readexactly(size + 2)
        if chunk[-2:] != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")
        parts.append(chunk[:-2])


async def read_reply(reader: asyncio.StreamReader, method: str) -> tuple[Reply, bool]:
    """One response from `reader`, and whether the connection can carry another request."""
    while True:
        status, headers = parse_head(await reader.readuntil(HEAD_END))
        if status >= 200:
            break  # 1xx answers are interim: the real one follows
    reusable = "close" not in headers.get("connection", "").lower()
    if method == "HEAD" or status in BODILESS:
        return Reply(status, headers, b""), reusable
    if is_chunked(headers):
        return Reply(status, headers, await read_chunked(reader)), reusable
    length = content_length(headers)
    if length is None:  # framed by the end of the connection
        return Reply(status, headers, await reader.read()), False
    return Reply(status, headers, await reader.readexactly(length)), reusable


def request_bytes(
    method: str, target: str, host: str, body: bytes, headers: tuple[tuple[str, str], ...] = ()
) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    if body or method in ("POST", "PUT", "PATCH"):
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Connection:
    """One keep-alive connection, used by one client at a time, reopened when needed.

    `headers` go with every request (the API key's Authorization), before each request's own.
    A request that fails or times out closes the connection: what is left on it can no longer
    be framed, so it is never reused.
    """

    def __init__(
        self,
        host: str,
        port: int,
        timeout_s: float = 30.0,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.headers = headers
        self._authority = f"{host}:{port}"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @classmethod
    def to(
        cls, url: str, timeout_s: float = 30.0, headers: tuple[tuple[str, str], ...] = ()
    ) -> Connection:
        """A connection to `http://host:port` (no path, no TLS)."""
        authority = url.removeprefix("http://").rstrip("/")
        host, _, port = authority.rpartition(":")
        return cls(host, int(port), timeout_s, headers)

    async def request(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: tuple[tuple[str, str], ...] = (),
        timeout_s: float | None = None,
    ) -> Reply:
        """Send one request and read its whole response; asyncio.TimeoutError past the limit."""
        data = request_bytes(method, target, self._authority, body, self.headers + headers)
        try:
            async with asyncio.timeout(timeout_s or self.timeout_s):
                reader, writer = await self._open()
                writer.write(data)
                reply, reusable = await read_reply(reader, method)
        except BaseException:
            self.close()
            raise
        if not reusable:
            self.close()
        return reply

    async def open(self) -> None:
        """Connect now, so that the first timed request does not pay for it."""
        async with asyncio.timeout(self.timeout_s):
            await self._open()

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        # A server closes idle keep-alive connections; at_eof tells before a request is lost.
        if self._reader is None or self._writer is None or self._reader.at_eof():
            self.close()
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
