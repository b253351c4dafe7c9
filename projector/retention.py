"""Trimming the log's streams to what no one needs from them any more.

A partition's log is several streams, its lanes (eventlog.lanes), each trimmed on its own. An
entry of a lane may go once it is (1) archived, which the live projector does in the same
transaction as the lane's checkpoint, so everything up to that checkpoint is archived (read once
it is on disk: the live batches commit asynchronously); (2) delivered to every consumer group of
the lane's stream (after its last-delivered-id an entry has not been read yet); (3) acknowledged
by every group: never at or after a group's oldest pending entry; and (4) older than the
retention window, when one is given. XTRIM MINID removes exactly the entries below the bound. A
lane whose stream has no workers group yet (nothing of it was handed to a worker), or that was
never projected, keeps everything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from eventlog.connection import Client
from eventlog.lanes import DEFAULT_LANE, Lane, known_lanes
from eventlog.names import Names
from eventlog.positions import START, earliest
from projector.store import ProjectionStore
from readmodel.checkpoints import Checkpoint

log = logging.getLogger(__name__)


def _group_bounds(client: Client, stream: str, names: Names) -> list[str] | None:
    """Each group's last delivered and oldest pending id; None while the workers group is
    missing, since then nothing has been handed to a worker yet."""
    groups = client.xinfo_groups(stream)
    if names.workers_group not in {group["name"] for group in groups}:
        return None
    bounds = []
    for group in groups:
        bounds.append(group["last-delivered-id"])
        pending = client.xpending(stream, group["name"])
        if pending["pending"]:
            bounds.append(pending["min"])
    return bounds


def _lane_bound(
    client: Client,
    stream: str,
    names: Names,
    archived: Checkpoint,
    keep_seconds: float,
    now_ms: int | None,
) -> str | None:
    if archived.last_entry_id == START or not client.exists(stream):
        return None
    groups = _group_bounds(client, stream, names)
    if groups is None:
        return None
    bounds = [archived.last_entry_id, *groups]
    if keep_seconds > 0:
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        bounds.append(f"{max(now - int(keep_seconds * 1000), 0)}-0")
    return earliest(*bounds)


def trim_bounds(
    client: Client,
    names: Names,
    live: ProjectionStore,
    keep_seconds: float = 0,
    now_ms: int | None = None,
) -> dict[Lane, str]:
    """For each lane of `live`'s partition that may be trimmed, the smallest id that must stay
    in its stream; every entry below it may go."""
    archived = live.flushed_checkpoints()
    lanes = set(known_lanes(client, names, live.partition)) | set(archived)
    bounds = {}
    for lane in sorted(lanes):
        stream = names.lane(live.partition, lane)
        at = archived.get(lane, Checkpoint())
        bound = _lane_bound(client, stream, names, at, keep_seconds, now_ms)
        if bound is not None:
            bounds[lane] = bound
    return bounds


def trim_bound(
    client: Client,
    names: Names,
    live: ProjectionStore,
    keep_seconds: float = 0,
    now_ms: int | None = None,
    lane: Lane = DEFAULT_LANE,
) -> str | None:
    """The smallest id that must stay in the stream of a lane of `live`'s partition; every
    entry below it may go. None: nothing may."""
    stream = names.lane(live.partition, lane)
    at = live.flushed_checkpoint(lane)
    return _lane_bound(client, stream, names, at, keep_seconds, now_ms)


def trim_lanes(
    client: Client, names: Names, live: ProjectionStore, keep_seconds: float = 0
) -> Mapping[Lane, int]:
    """Trim every lane of `live`'s partition; returns how many entries went from each lane
    trimmed."""
    removed = {}
    for lane, bound in trim_bounds(client, names, live, keep_seconds).items():
        stream = names.lane(live.partition, lane)
        removed[lane] = int(client.xtrim(stream, minid=bound, approximate=False))
        log.info("trimmed %d entries below %s from %s", removed[lane], bound, stream)
    return removed


def trim(client: Client, names: Names, live: ProjectionStore, keep_seconds: float = 0) -> int:
    """Trim every lane of `live`'s partition; returns how many entries went."""
    return sum(trim_lanes(client, names, live, keep_seconds).values())
