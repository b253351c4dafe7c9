"""`python -m projector events tail|show JOB_ID|stats`: the log as an operator reads it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import redis
from sqlalchemy import Engine, func, select

from infra.eventlog import Entry, range_entries, stream_entries
from infra.names import Names
from infra.schema import events, projector_checkpoints
from projector import archive
from projector.store import START
from projector.timeline import merge, timeline

Print = Callable[[str], None]
_HEAD = ("type", "v", "occurred_at", "job_id")


def line(entry_id: str, fields: dict[str, str]) -> str:
    """One entry on one line: id, time, type, job, then its own fields as key=value."""
    rest = " ".join(f"{k}={v}" for k, v in fields.items() if k not in _HEAD)
    head = f"{entry_id} {fields.get('occurred_at', '-')} {fields.get('type', '?')}"
    return f"{head} v{fields.get('v', '?')} {fields.get('job_id', '-')} {rest}".rstrip()


def tail(
    client: redis.Redis, names: Names, stop: threading.Event, out: Print, after: str = "$"
) -> None:
    """Print entries as they are appended until `stop` is set."""
    while not stop.is_set():
        reply = client.xread({names.events: after}, count=100, block=500)
        for entry_id, fields in stream_entries(reply):
            out(line(entry_id, fields))
            after = entry_id


def job_entries(client: redis.Redis, engine: Engine, names: Names, job_id: str) -> list[Entry]:
    """Every entry of a job: the archive, then the stream after what the live projector (and
    so the archive) has reached, starting no earlier than the job's request."""
    with engine.connect() as conn:
        checkpoint = conn.execute(
            select(projector_checkpoints.c.last_entry_id).where(
                projector_checkpoints.c.name == "jobs"
            )
        ).scalar()
        archived = archive.for_job(conn, job_id)
    requested = str(client.get(names.job(job_id)) or START)
    start = max(str(checkpoint or START), requested, key=archive.position)
    streamed: list[Entry] = []
    after = start
    while batch := range_entries(client.xrange(names.events, f"({after}", "+", count=1000)):
        streamed += [(i, f) for i, f in batch if f.get("job_id") == job_id]
        after = batch[-1][0]
    return merge(archived, streamed)


def show(client: redis.Redis, engine: Engine, names: Names, job_id: str, out: Print) -> bool:
    entries = job_entries(client, engine, names, job_id)
    for entry_id, fields in entries:
        out(line(entry_id, fields))
    return bool(timeline(entries, job_id)) or bool(entries)


def _stream_stats(client: redis.Redis, names: Names) -> dict[str, Any]:
    if not client.exists(names.events):
        return {"length": 0, "entries-added": 0, "first": None, "last": None}
    info = client.xinfo_stream(names.events)
    first, last = info.get("first-entry"), info.get("last-entry")
    return {
        "length": info["length"],
        "entries-added": info.get("entries-added", 0),
        "first": first[0] if first else None,
        "last": last[0] if last else None,
    }


def stats(client: redis.Redis, engine: Engine, names: Names, out: Print) -> None:
    stream = _stream_stats(client, names)
    out(
        f"stream {names.events}: length {stream['length']}, added {stream['entries-added']}, "
        f"first {stream['first']}, last {stream['last']}"
    )
    groups = client.xinfo_groups(names.events) if stream["first"] or stream["length"] else []
    for group in groups:
        pending = client.xpending(names.events, group["name"])
        out(
            f"group {group['name']}: consumers {group['consumers']}, lag {group.get('lag')}, "
            f"pending {pending['pending']} (oldest {pending['min']}), "
            f"last delivered {group['last-delivered-id']}"
        )
    out(f"dead letters {names.dead_letters}: {client.xlen(names.dead_letters)}")
    with engine.connect() as conn:
        rows = conn.execute(select(projector_checkpoints)).mappings().all()
        archived = conn.execute(select(func.count()).select_from(events)).scalar_one()
    for row in rows:
        behind = max(stream["entries-added"] - row["entries_read"], 0)
        out(
            f"projection {row['name']}: at {row['last_entry_id']}, "
            f"{row['entries_read']} read, {behind} behind"
        )
    out(f"archive: {archived} events")
