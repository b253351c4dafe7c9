"""A prefix's Redis keys removed, so that stacks sharing one Redis server leave nothing behind."""

from __future__ import annotations

from eventlog.connection import Client, connect, is_cluster
from eventlog.names import Names

SCAN_COUNT = 1000
DELETE_CHUNK = 10_000  # a backlog run leaves a key per job: no single command of millions


def drop_keys(client: Client, names: Names) -> None:
    for pattern in names.patterns:
        keys = list(client.scan_iter(match=pattern, count=SCAN_COUNT))
        for start in range(0, len(keys), DELETE_CHUNK):
            client.delete(*keys[start : start + DELETE_CHUNK])


def drop_keys_at(url: str, names: Names) -> None:
    """As :func:`drop_keys`, on a connection of its own to the server at ``url``."""
    client = connect(url, is_cluster(url))
    try:
        drop_keys(client, names)
    finally:
        client.close()
