"""`python -m projector events tail|show JOB_ID|stats`: the log as an operator reads it.

A partition's log is several streams, its lanes (eventlog.lanes): `tail` follows all of them,
`show` reads a job's lane, `stats` reports each lane.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from sqlalchemy import Engine, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from domain.ids import is_job_id, partition_of
from eventlog.connection import AsyncClient, Client, connect_async
from eventlog.entries import Entry, entries_by_stream, range_entries
from eventlog.lanes import DEFAULT_LANE, Lane, known_lanes, served_first
from eventlog.names import Names
from eventlog.positions import START
from eventlog.submission import indexed_at
from readmodel import checkpoints, timeline
from readmodel.tables import events, jobs, projector_checkpoints

Print = Callable[[str], None]
_HEAD = ("type", "v", "occurred_at", "job_id")


def line(entry_id: str, fields: dict[str, str]) -> str:
    """One entry on one line: id, time, type, job, then its own fields as key=value."""
    rest = " ".join(f"{k}={v}" for k, v in fields.items() if k not in _HEAD)
    head = f"{entry_id} {fields.get('occurred_at', '-')} {fields.get('type', '?')}"
    return f"{head} v{fields.get('v', '?')} {fields.get('job_id', '-')} {rest}".rstrip()


def tail(
    client: Client,
    names: Names,
    partitions: Sequence[int],
    stop: threading.Event,
    out: Print,
    lanes_refresh_s: float = 1.0,
) -> None:
    """Print the entries appended to every lane of every partition from now on until `stop` is
    set, each line after its lane's name (one partition's after another's; within a lane, in
    order). A lane registered meanwhile is followed from its first entry."""
    after: dict[str, str] = {}
    streams: dict[int, dict[str, Lane]] = {p: {} for p in partitions}
    next_lanes = 0.0
    while not stop.is_set():
        if time.monotonic() >= next_lanes:
            next_lanes = time.monotonic() + lanes_refresh_s
            started = not after
            for p in partitions:
                for lane in known_lanes(client, names, p):
                    stream = names.lane(p, lane)
                    if stream not in after:
                        # At the start, after each lane's last entry; a lane found later was
                        # registered since: all of it.
                        after[stream] = _last_id(client, stream) if started else START
                        streams[p][stream] = lane
        # One read per partition: on a Redis Cluster the partitions are in different slots,
        # and a partition's lanes in one.
        for p in partitions:
            reply = client.xread(
                {stream: after[stream] for stream in streams[p]},
                count=100,
                block=500 // len(partitions) or 1,
            )
            for stream, entries in entries_by_stream(reply).items():
                for entry_id, fields in entries:
                    out(f"{streams[p][stream].name} {line(entry_id, fields)}")
                    after[stream] = entry_id


def _last_id(client: Client, stream: str) -> str:
    last = range_entries(client.xrevrange(stream, "+", "-", count=1))
    return last[0][0] if last else START


async def job_lane(conn: AsyncConnection, client: AsyncClient, names: Names, job_id: str) -> Lane:
    """The lane of a job's events: as its row says (projected), else its job index (accepted,
    not projected yet), else as its archived entries say; the default lane if nothing does."""
    if not is_job_id(job_id):
        return DEFAULT_LANE
    row = (
        await conn.execute(select(jobs.c.lane, jobs.c.tenant).where(jobs.c.job_id == job_id))
    ).first()
    if row is not None:
        return timeline.lane_of(row.lane, row.tenant)
    indexed = cast(str | None, await client.get(names.job(job_id)))
    if indexed:
        return indexed_at(indexed)[1]
    query = select(events.c.lane).where(
        events.c.partition == partition_of(job_id), events.c.job_id == job_id
    )
    archived = (await conn.execute(query.limit(1))).scalar()
    return (checkpoints.lane_named(archived) if archived else None) or DEFAULT_LANE


async def job_entries(
    redis_url: str, cluster: bool, database_url: str, names: Names, job_id: str
) -> list[Entry]:
    """Every entry of a job, as the API's timeline reads them, the whole stream of its lane if
    need be."""
    engine = create_async_engine(database_url)
    client = connect_async(redis_url, cluster)
    try:
        async with engine.connect() as conn:
            lane = await job_lane(conn, client, names, job_id)
            checkpoint, archived = await timeline.archived(conn, job_id, lane)
        streamed = await timeline.streamed(client, names, job_id, checkpoint, lane, max_pages=None)
    finally:
        await client.aclose()
        await engine.dispose()
    return timeline.merge(archived, streamed)


def show(
    redis_url: str, cluster: bool, database_url: str, names: Names, job_id: str, out: Print
) -> bool:
    entries = asyncio.run(job_entries(redis_url, cluster, database_url, names, job_id))
    for entry_id, fields in entries:
        out(line(entry_id, fields))
    return bool(entries)


def _stream_stats(client: Client, stream: str) -> dict[str, Any]:
    if not client.exists(stream):
        return {"length": 0, "entries-added": 0, "first": None, "last": None}
    info = client.xinfo_stream(stream)
    first, last = info.get("first-entry"), info.get("last-entry")
    return {
        "length": info["length"],
        "entries-added": info.get("entries-added", 0),
        "first": first[0] if first else None,
        "last": last[0] if last else None,
    }


def stats(
    client: Client, engine: Engine, names: Names, partitions: Sequence[int], out: Print
) -> None:
    """Per partition, each lane: its stream, its groups and where each projection is in it;
    then the partition's dead letters; then the archive."""
    with engine.connect() as conn:
        rows = conn.execute(select(projector_checkpoints)).mappings().all()
        archived = conn.execute(select(func.count()).select_from(events)).scalar_one()
    for partition in partitions:
        _partition_stats(client, names, partition, rows, out)
    out(f"archive: {archived} events")


def _partition_stats(
    client: Client, names: Names, partition: int, rows: Sequence[Any], out: Print
) -> None:
    projected = {(row["lane"], row["name"]): row for row in rows if row["partition"] == partition}
    lanes = set(known_lanes(client, names, partition))
    lanes.update(lane for name, _ in projected if (lane := checkpoints.lane_named(name)))
    for lane in served_first(list(lanes)):
        _lane_stats(client, names, partition, lane, projected, out)
    letters = names.dead_letters(partition)
    out(f"dead letters {letters}: {client.xlen(letters)}")


def _lane_stats(
    client: Client,
    names: Names,
    partition: int,
    lane: Lane,
    projected: dict[tuple[str, str], Any],
    out: Print,
) -> None:
    stream_name = names.lane(partition, lane)
    stream = _stream_stats(client, stream_name)
    out(
        f"stream {stream_name} (lane {lane.name}): length {stream['length']}, "
        f"added {stream['entries-added']}, first {stream['first']}, last {stream['last']}"
    )
    groups = client.xinfo_groups(stream_name) if stream["first"] or stream["length"] else []
    for group in groups:
        pending = client.xpending(stream_name, group["name"])
        out(
            f"  group {group['name']}: consumers {group['consumers']}, lag {group.get('lag')}, "
            f"pending {pending['pending']} (oldest {pending['min']}), "
            f"last delivered {group['last-delivered-id']}"
        )
    for (name, projection), row in sorted(projected.items()):
        if name != lane.name:
            continue
        behind = max(stream["entries-added"] - row["entries_read"], 0)
        out(
            f"  projection {projection}: at {row['last_entry_id']}, "
            f"{row['entries_read']} read, {behind} behind"
        )
