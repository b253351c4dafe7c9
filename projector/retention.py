"""Trimming the Redis stream to what no one needs from it any more.

An entry may go once it is (1) archived, which the live projector does in the same transaction
as its checkpoint, so everything up to that checkpoint is archived (read once it is on disk:
the live batches commit asynchronously); (2) delivered to every
consumer group (after its last-delivered-id an entry has not been read yet); (3) acknowledged
by every group: never at or after a group's oldest pending entry; and (4) older than the
retention window, when one is given. XTRIM MINID removes exactly the entries below the bound.
"""

from __future__ import annotations

import logging
import time

import redis

from infra.names import Names
from projector.archive import position
from projector.store import START, ProjectionStore

log = logging.getLogger(__name__)


def _group_bounds(client: redis.Redis, names: Names) -> list[str] | None:
    """Each group's last delivered and oldest pending id; None while the workers group is
    missing, since then nothing has been handed to a worker yet."""
    groups = client.xinfo_groups(names.events)
    if names.workers_group not in {group["name"] for group in groups}:
        return None
    bounds = []
    for group in groups:
        bounds.append(group["last-delivered-id"])
        pending = client.xpending(names.events, group["name"])
        if pending["pending"]:
            bounds.append(pending["min"])
    return bounds


def trim_bound(
    client: redis.Redis,
    names: Names,
    live: ProjectionStore,
    keep_seconds: float = 0,
    now_ms: int | None = None,
) -> str | None:
    """The smallest id that must stay in the stream; every entry below it may go."""
    if not client.exists(names.events):
        return None
    archived = live.flushed_checkpoint().last_entry_id
    groups = _group_bounds(client, names)
    if archived == START or groups is None:
        return None
    bounds = [archived, *groups]
    if keep_seconds > 0:
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        bounds.append(f"{max(now - int(keep_seconds * 1000), 0)}-0")
    return min(bounds, key=position)


def trim(client: redis.Redis, names: Names, live: ProjectionStore, keep_seconds: float = 0) -> int:
    """Trim the stream; returns how many entries went."""
    bound = trim_bound(client, names, live, keep_seconds)
    if bound is None:
        return 0
    removed = int(client.xtrim(names.events, minid=bound, approximate=False))
    log.info("trimmed %d entries below %s from %s", removed, bound, names.events)
    return removed
