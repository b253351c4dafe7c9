"""Free TCP ports, so that servers and stacks can run side by side on one machine."""

from __future__ import annotations

import random
import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (racy, but good enough)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ephemeral_ports() -> tuple[int, int]:
    """The range the kernel picks the local ports of outgoing connections from."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            low, high = (int(part) for part in ports.read().split())
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default
    return low, high


def free_port_with_bus(
    offset: int = 10000, low: int = 12000, taken: frozenset[int] = frozenset()
) -> int:
    """A free port whose `port + offset` is free too, as a cluster node needs for its bus.

    Both are taken below the ephemeral range: a port in it that is free now may be the local
    end of any outgoing connection a moment later (the tests open thousands), and a node whose
    bus port is taken so exits at start. `taken`: ports already handed out (and not bound yet),
    which neither may be."""
    high = ephemeral_ports()[0] - 1 - offset
    if high <= low:
        raise OSError(f"no room below the ephemeral ports for a port and its bus {offset} above")
    for _ in range(1000):
        port = random.randint(low, high)
        if {port, port + offset} & taken:
            continue
        if is_free(port) and is_free(port + offset):
            return port
    raise OSError(f"no free port with a free port {offset} above it in {low}-{high}")
