"""A job's timeline: every one of its entries, from the archive and from the stream, in log order.

Every event of a job is in its lane's stream (eventlog.lanes). The archive holds everything up
to the live projector's checkpoint of that lane (they commit together); the entries after it are
read from the lane's stream, starting no earlier than the job's JobRequested, so a job's
timeline is complete as soon as its last event is appended. The API serves it
(GET /v1/jobs/{id}/events) and operators print it (`python -m projector events show`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncConnection

from domain.errors import InferFlowError
from domain.events import Event, decode
from domain.ids import partition_of
from eventlog.connection import AsyncClient
from eventlog.entries import Entry, range_entries
from eventlog.lanes import DEFAULT_LANE, Lane
from eventlog.names import Names
from eventlog.positions import START, latest, position
from eventlog.submission import indexed_at
from readmodel import archive, checkpoints

# Entries read from the stream per call, and at most this many calls per timeline: a projector
# far behind makes the timeline slow, never the server.
PAGE = 1000
MAX_PAGES = 50

_COMMON = ("job_id", "occurred_at", "consumer", "attempt")


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    entry_id: str
    type: str
    schema_version: int
    occurred_at: datetime
    consumer: str | None
    attempt: int | None
    payload: dict[str, Any]


def merge(*sources: Iterable[Entry]) -> list[Entry]:
    """The entries of all sources once each, in log order (an entry can be in both the archive
    and the stream)."""
    unique = {entry_id: entry_fields for source in sources for entry_id, entry_fields in source}
    return sorted(unique.items(), key=lambda entry: position(entry[0]))


def _payload(event: Event) -> dict[str, Any]:
    return {f.name: getattr(event, f.name) for f in fields(event) if f.name not in _COMMON}


def view(entry_id: str, entry_fields: dict[str, str]) -> TimelineEvent | None:
    """The entry as a timeline event (upcast to the current version); None when unreadable."""
    try:
        event = decode(entry_fields)
    except InferFlowError:
        return None
    return TimelineEvent(
        entry_id=entry_id,
        type=type(event).__name__,
        schema_version=type(event).schema_version,
        occurred_at=event.occurred_at,
        consumer=getattr(event, "consumer", None),
        attempt=getattr(event, "attempt", None),
        payload=_payload(event),
    )


def timeline(entries: Iterable[Entry], job_id: str) -> list[TimelineEvent]:
    """The readable events of `job_id` among `entries`, in their order."""
    out = []
    for entry_id, entry_fields in entries:
        if entry_fields.get("job_id") != job_id:
            continue
        event = view(entry_id, entry_fields)
        if event is not None:
            out.append(event)
    return out


def lane_of(kind: str, tenant: str) -> Lane:
    """The lane of a job of `kind` (domain.lanes) and `tenant`, as its state or row names them;
    the default lane when they name none."""
    try:
        return Lane(kind, tenant)
    except ValueError:
        return DEFAULT_LANE


async def archived(
    conn: AsyncConnection,
    job_id: str,
    lane: Lane = DEFAULT_LANE,
    projection: str = checkpoints.LIVE,
) -> tuple[str, list[Entry]]:
    """The projection's checkpoint in the job's lane (of its partition), and the job's archived
    entries."""
    # The checkpoint first: the archive read after it holds at least everything up to it.
    query = checkpoints.query(projection, partition_of(job_id), lane)
    at = checkpoints.from_row((await conn.execute(query)).first())
    rows = (await conn.execute(archive.job_query(job_id))).all()
    return at.last_entry_id, [(row.entry_id, dict(row.fields)) for row in rows]


async def streamed(
    client: AsyncClient,
    names: Names,
    job_id: str,
    checkpoint: str,
    lane: Lane | None = None,
    max_pages: int | None = MAX_PAGES,
) -> list[Entry]:
    """The job's entries in its lane's stream after `checkpoint`, that lane's checkpoint (and
    not before its request), reading at most `max_pages` pages (None: the whole rest of the
    stream, for operators). Without `lane`, the job index names it (the default lane once the
    index is gone)."""
    stream, start = await stream_start(client, names, job_id, checkpoint, lane)
    found, _ = await scan(client, stream, job_id, start, max_pages=max_pages)
    return found


async def stream_start(
    client: AsyncClient, names: Names, job_id: str, checkpoint: str, lane: Lane | None = None
) -> tuple[str, str]:
    """The stream of the job's lane (without `lane`, the one the job index names), and where
    in it (an XRANGE start) the job's entries after `checkpoint`, that lane's checkpoint,
    begin."""
    indexed = cast(str | None, await client.get(names.job(job_id)))
    requested, indexed_lane = indexed_at(indexed) if indexed else (START, DEFAULT_LANE)
    lane = indexed_lane if lane is None else lane
    # From just after the checkpoint, or from the request itself when the projection has not
    # reached it yet. The index's entry id is a position in the lane it names, and no other.
    start = f"({checkpoint}"
    if lane == indexed_lane and latest(checkpoint, requested) != checkpoint:
        start = requested
    return names.lane(partition_of(job_id), lane), start


async def scan(
    client: AsyncClient,
    stream: str,
    job_id: str,
    start: str,
    end: str = "+",
    max_pages: int | None = MAX_PAGES,
) -> tuple[list[Entry], str | None]:
    """The job's entries in `stream` from `start` to `end` (XRANGE bounds), reading at most
    `max_pages` pages (None: all); and the id of the last entry read, of any job (None when
    there was none), which is where a reader that follows the stream goes on from."""
    found: list[Entry] = []
    last: str | None = None
    pages = 0
    while max_pages is None or pages < max_pages:
        pages += 1
        reply: Any = await client.xrange(stream, start, end, count=PAGE)
        batch = range_entries(reply)
        found += [entry for entry in batch if entry[1].get("job_id") == job_id]
        if batch:
            last = batch[-1][0]
        if len(batch) < PAGE:
            break
        start = f"({last}"
    return found, last
