"""One HTTP attempt of a webhook message: the URL checked again (runtime.webhookurls: what its
name resolves to may have changed since submit), then a POST to the address that passed, with
the name kept for the Host header and TLS (SNI and the certificate's check), no redirects
followed, a deadline on the whole exchange, and at most WEBHOOK_MAX_RESPONSE_BYTES of the
answer read.

aiohttp sends them: its connection pool keeps a queue per host, so thousands of deliveries a
second to one receiver cost little, and a receiver that holds its connections holds no other
receiver's."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from runtime import webhookurls
from runtime.errors import RefusedWebhookError

USER_AGENT = "InferFlow-Webhooks/1"


@dataclass(frozen=True, slots=True)
class Answer:
    """What an attempt got: the receiver's status (0 when none came: `error` says why), and its
    Retry-After in seconds, when it sent one."""

    status_code: int
    error: str
    duration_ms: float
    retry_after_s: float | None = None

    @property
    def succeeded(self) -> bool:
        return 200 <= self.status_code < 300


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """A Retry-After header's wait (seconds, or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - now).total_seconds())


def pinned(target: webhookurls.Target) -> tuple[str, str]:
    """The URL with its host replaced by the first checked address, and the Host header."""
    parts = urlsplit(target.url)
    address = target.addresses[0]
    host = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    url = urlunsplit((parts.scheme, f"{host}:{target.port}", parts.path or "/", parts.query, ""))
    return url, parts.netloc


class Sender:
    """Made in the event loop it sends from (aiohttp's session belongs to one loop)."""

    def __init__(
        self, timeout_s: float, max_response_bytes: int, allow_private: bool, connections: int
    ) -> None:
        self._timeout_s = timeout_s
        self._max_response_bytes = max_response_bytes
        self._allow_private = allow_private
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=connections, use_dns_cache=False),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            auto_decompress=False,
            trust_env=False,  # no proxy from the environment between us and the receiver
        )

    async def close(self) -> None:
        await self._session.close()

    async def send(self, url: str, body: bytes, headers: dict[str, str]) -> Answer:
        began = time.perf_counter()

        def took() -> float:
            return (time.perf_counter() - began) * 1000

        try:
            target = await webhookurls.check(url, self._allow_private, self._timeout_s)
        except RefusedWebhookError as exc:
            return Answer(0, f"refused: {exc}", took())
        address_url, host = pinned(target)
        sent = {
            **headers,
            "Host": host,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        try:
            async with self._session.post(
                address_url,
                data=body,
                headers=sent,
                allow_redirects=False,
                server_hostname=target.host if target.scheme == "https" else None,
            ) as response:
                await self._drain(response)
                status, retry_after = response.status, response.headers.get("Retry-After")
        except TimeoutError:
            return Answer(0, f"no answer within {self._timeout_s:g} s", took())
        except aiohttp.ClientError as exc:
            return Answer(0, f"{type(exc).__name__}: {exc}".rstrip(": "), took())
        wait = retry_after_s(retry_after, datetime.now(UTC))
        return Answer(status, "", took(), wait)

    async def _drain(self, response: aiohttp.ClientResponse) -> None:
        """Read at most the bound of the answer; past it the connection is dropped."""
        read = await response.content.read(self._max_response_bytes)
        if len(read) >= self._max_response_bytes and not response.content.at_eof():
            response.close()
