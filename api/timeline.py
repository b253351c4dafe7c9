"""A job's timeline for the API: the archive, plus what is still only in the stream.

The archive holds everything up to the live projector's checkpoint (they commit together); the
entries after it are read from the stream, starting no earlier than the job's JobRequested, so a
job's timeline is complete as soon as its last event is appended.
"""

from __future__ import annotations

from typing import Any, cast

import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.store import _guard
from infra.eventlog import Entry, range_entries
from infra.names import Names
from infra.schema import projector_checkpoints
from projector.archive import job_query, position
from projector.timeline import TimelineEvent, merge, timeline

# Entries read from the stream per call, and at most this many calls per timeline: a projector
# far behind makes the timeline slow, never the server.
PAGE = 1000
MAX_PAGES = 50


class TimelineReader:
    def __init__(
        self,
        engine: AsyncEngine,
        client: aioredis.Redis,
        names: Names,
        timeout_s: float,
        projection: str = "jobs",
    ) -> None:
        self._engine = engine
        self._redis = client
        self._names = names
        self._timeout_s = timeout_s
        self._projection = projection

    async def events(self, job_id: str) -> list[TimelineEvent]:
        checkpoint, archived = await self._archived(job_id)
        streamed = await self._streamed(job_id, checkpoint)
        return timeline(merge(archived, streamed), job_id)

    async def _archived(self, job_id: str) -> tuple[str, list[Entry]]:
        table = projector_checkpoints
        at = select(table.c.last_entry_id).where(table.c.name == self._projection)
        # The checkpoint first: the archive read after it holds at least everything up to it.
        async with _guard("postgres", self._timeout_s), self._engine.connect() as conn:
            checkpoint = (await conn.execute(at)).scalar() or "0-0"
            rows = (await conn.execute(job_query(job_id))).all()
        return checkpoint, [(row.entry_id, dict(row.fields)) for row in rows]

    async def _streamed(self, job_id: str, checkpoint: str) -> list[Entry]:
        async with _guard("redis", self._timeout_s):
            requested = cast(str | None, await self._redis.get(self._names.job(job_id)))
            after = max(checkpoint, requested or "0-0", key=position)
            found: list[Entry] = []
            for _ in range(MAX_PAGES):
                reply: Any = await self._redis.xrange(
                    self._names.events, f"({after}", "+", count=PAGE
                )
                batch = range_entries(reply)
                found += [entry for entry in batch if entry[1].get("job_id") == job_id]
                if len(batch) < PAGE:
                    break
                after = batch[-1][0]
        return found
