"""Which webhook URLs InferFlow calls: the check at submit (the API) and again at delivery (the
notifier), because what a name resolves to can change in between.

A URL must be http or https, with a host, and without credentials. Its host must not resolve to
a loopback, private, link-local, shared (CGNAT), multicast, reserved or unspecified address, nor
to a cloud metadata endpoint: a webhook must not become a way to reach inside the network
InferFlow runs in (SSRF). `WEBHOOK_ALLOW_PRIVATE_NETWORKS=true` lifts the address rule (a
deployment whose receivers live next to it, and the tests), except for the metadata endpoints,
which no receiver is.

Every address a name resolves to is checked, and the notifier connects to one of those checked
addresses (`Target`), never resolving the name again in between.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from runtime.errors import RefusedWebhookError

MAX_URL_CHARS = 2048
SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Instance metadata services: AWS, GCP, Azure and others at the link-local address, AWS's IPv6
# one, Alibaba's, Azure's wire server, Oracle's.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "168.63.129.16", "192.0.0.192")
)


@dataclass(frozen=True, slots=True)
class Target:
    """Where a checked URL is called: its parts, and the addresses its host resolved to."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[IPAddress, ...]


def parse(url: str) -> SplitResult:
    """The URL's parts, if its form is one InferFlow calls; `RefusedWebhookError` else."""
    if len(url) > MAX_URL_CHARS:
        raise RefusedWebhookError(f"a webhook URL is at most {MAX_URL_CHARS} characters")
    if not url.isascii() or any(c.isspace() or ord(c) < 32 for c in url):
        raise RefusedWebhookError("a webhook URL is ASCII without spaces (IDNA, percent-encoded)")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RefusedWebhookError(f"not a URL: {exc}") from exc
    if parts.scheme not in SCHEMES:
        raise RefusedWebhookError(f"a webhook URL is http or https, not {parts.scheme!r}")
    if not parts.hostname:
        raise RefusedWebhookError("a webhook URL names a host")
    if parts.username is not None or parts.password is not None:
        raise RefusedWebhookError("a webhook URL carries no credentials")
    if port == 0:
        raise RefusedWebhookError("a webhook URL's port is 1 to 65535")
    return parts


def refusal(address: IPAddress, allow_private: bool) -> str | None:
    """Why `address` may not be called, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return f"{address} is a cloud metadata endpoint"
    if allow_private:
        return None
    # Multicast addresses count as global: checked by kind before the global test.
    for kind in ("loopback", "link_local", "private", "multicast", "unspecified", "reserved"):
        if getattr(address, f"is_{kind}"):
            return f"{address} is a {kind.replace('_', '-')} address"
    return None if address.is_global else f"{address} is not a public address"


async def resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    """Every address `host` resolves to (itself, when it is one)."""
    try:
        return (ipaddress.ip_address(host.strip("[]")),)
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        found = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise RefusedWebhookError(f"the webhook's host {host!r} does not resolve: {exc}") from exc
    addresses = dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found)
    if not addresses:
        raise RefusedWebhookError(f"the webhook's host {host!r} resolves to no address")
    return tuple(addresses)


async def check(url: str, allow_private: bool, timeout_s: float = 5.0) -> Target:
    """The URL as a `Target`, once its form and every address of its host pass; else
    `RefusedWebhookError` (a name that does not resolve in `timeout_s` included)."""
    parts = parse(url)
    host = parts.hostname or ""
    port = parts.port or DEFAULT_PORTS[parts.scheme]
    try:
        addresses = await asyncio.wait_for(resolve(host, port), timeout_s)
    except TimeoutError as exc:
        raise RefusedWebhookError(f"the webhook's host {host!r} did not resolve in time") from exc
    for address in addresses:
        why = refusal(address, allow_private)
        if why is not None:
            raise RefusedWebhookError(f"the webhook's host {host!r} resolves to {why}")
    return Target(url, parts.scheme, host, port, addresses)
