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


def free_port_with_bus(offset: int = 10000, low: int = 20000, high: int = 55535) -> int:
    """A free port whose `port + offset` is free too, as a cluster node needs for its bus (and
    so at most 65535 - offset)."""
    for _ in range(1000):
        port = random.randint(low, high)
        if is_free(port) and is_free(port + offset):
            return port
    raise OSError(f"no free port with a free port {offset} above it in {low}-{high}")
