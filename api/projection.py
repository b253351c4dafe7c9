"""The API's side of the read model in PostgreSQL: jobs, status counts, the checkpoints (one per
lane of each partition) and the archived part of a timeline. Every call is guarded
(api.guard)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import func, make_url, select
from sqlalchemy.ext.asyncio import AsyncEngine

from api.guard import guarded
from domain.job import JobState, JobStatus
from eventlog.entries import Entry
from eventlog.lanes import DEFAULT_LANE, Lane
from readmodel import checkpoints, timeline
from readmodel.checkpoints import Checkpoint
from readmodel.rows import to_state
from readmodel.tables import jobs

# The hot read of the API: one autocommit round trip, prepared after a few uses.
_JOB_QUERY = "SELECT * FROM jobs WHERE job_id = %s"


def connection_pool(database_url: str, max_size: int) -> AsyncConnectionPool:
    """A psycopg pool for the reads every GET makes (opened in the app's lifespan).

    Autocommit: a single SELECT needs no BEGIN or ROLLBACK. Outside SQLAlchemy: its async layer
    (a greenlet per call) and transaction handling cost more than the query."""
    conninfo = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    return AsyncConnectionPool(
        conninfo,
        min_size=1,
        max_size=max_size,
        open=False,
        # UTC: times read back written as the projector's announcements write them.
        kwargs={"autocommit": True, "row_factory": dict_row, "options": "-c TimeZone=UTC"},
    )


class ProjectionReader:
    def __init__(
        self,
        engine: AsyncEngine,
        timeout_s: float,
        pool: AsyncConnectionPool,
        projection: str = checkpoints.LIVE,
    ) -> None:
        self._engine = engine
        self._timeout_s = timeout_s
        self._pool = pool
        self._projection = projection

    async def open(self) -> None:
        # Without waiting: the API starts, and answers 503, while PostgreSQL is down.
        await self._pool.open(wait=False)

    async def close(self) -> None:
        await self._pool.close()

    async def job(self, job_id: str) -> JobState | None:
        async with guarded("postgres", self._timeout_s):
            try:
                found = await self._read_job(job_id)
            except psycopg.OperationalError:
                # A pooled connection that PostgreSQL closed (a restart) fails once; the pool
                # drops it, and the read is safe to repeat on a fresh one.
                found = await self._read_job(job_id)
        return to_state(found) if found else None

    async def rows(self, query: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Every row of a read-only `query` (psycopg placeholders), as dicts, guarded and
        retried once on a connection PostgreSQL closed, as `job` is."""
        async with guarded("postgres", self._timeout_s):
            try:
                return await self._fetch_all(query, params)
            except psycopg.OperationalError:
                return await self._fetch_all(query, params)

    async def _fetch_all(self, query: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        async with self._pool.connection(timeout=self._timeout_s) as conn:
            cursor = await conn.execute(query, params)
            return cast(list[dict[str, Any]], await cursor.fetchall())

    async def _read_job(self, job_id: str) -> dict[str, Any] | None:
        async with self._pool.connection(timeout=self._timeout_s) as conn:
            cursor = await conn.execute(_JOB_QUERY, (job_id,))
            return cast(dict[str, Any] | None, await cursor.fetchone())

    async def status_counts(self) -> dict[JobStatus, int]:
        query = select(jobs.c.status, func.count()).group_by(jobs.c.status)
        async with guarded("postgres", self._timeout_s), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        counts = dict.fromkeys(JobStatus, 0)
        counts.update({JobStatus(status): n for status, n in rows})
        return counts

    async def checkpoints(self, partitions: int) -> dict[int, dict[Lane, Checkpoint]]:
        """The checkpoints of every partition, by lane: those of the lanes projected so far
        (a lane without one is at the start of its stream)."""
        query = checkpoints.query_all(self._projection)
        async with guarded("postgres", self._timeout_s), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        found: dict[int, dict[Lane, Checkpoint]] = {p: {} for p in range(partitions)}
        for partition, lanes in checkpoints.by_partition_and_lane(rows).items():
            if partition < partitions:
                found[partition] = lanes
        return found

    async def archived(self, job_id: str, lane: Lane = DEFAULT_LANE) -> tuple[str, list[Entry]]:
        """The checkpoint of the job's lane, and the job's entries in the archive up to it (at
        least)."""
        async with guarded("postgres", self._timeout_s), self._engine.connect() as conn:
            return await timeline.archived(conn, job_id, lane, self._projection)
