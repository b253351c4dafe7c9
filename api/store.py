"""The API's access to Redis and PostgreSQL; driver errors become DependencyUnavailableError."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import psycopg
import redis.asyncio as aioredis
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from redis.exceptions import RedisError
from sqlalchemy import func, make_url, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.errors import DependencyUnavailableError
from domain.events import JobRequested, decode
from domain.job import JobState, JobStatus, evolve
from infra.eventlog import SUBMIT_SCRIPT, Submission, parse_submission, submit_args
from infra.names import Names
from infra.schema import jobs, projector_checkpoints
from projector.rows import to_state

T = TypeVar("T")


@asynccontextmanager
async def _guard(dependency: str, timeout_s: float) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except TimeoutError as exc:
        raise DependencyUnavailableError(dependency, f"no answer within {timeout_s:.1f} s") from exc
    except (RedisError, OSError) as exc:
        raise DependencyUnavailableError(dependency, str(exc) or type(exc).__name__) from exc
    except (OperationalError, DBAPIError) as exc:
        raise DependencyUnavailableError(dependency, str(exc.orig or exc)) from exc
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise DependencyUnavailableError(dependency, str(exc)) from exc


@dataclass(frozen=True, slots=True)
class ProjectorLag:
    entries: int
    seconds: float


class EventLogClient:
    def __init__(self, client: aioredis.Redis, names: Names, timeout_s: float) -> None:
        self._redis = client
        self._names = names
        self._timeout_s = timeout_s
        self._submit = client.register_script(SUBMIT_SCRIPT)

    async def _call(self, awaitable: Awaitable[T]) -> T:
        async with _guard("redis", self._timeout_s):
            return await awaitable

    async def submit(
        self,
        event: JobRequested,
        idempotency_key: str | None,
        fingerprint: str,
        job_index_ttl_s: int,
        idempotency_ttl_s: int,
    ) -> Submission:
        keys, argv = submit_args(
            self._names, event, idempotency_key, fingerprint, job_index_ttl_s, idempotency_ttl_s
        )
        return parse_submission(await self._call(self._submit(keys=keys, args=argv)))

    async def accepted_job(self, job_id: str) -> JobState | None:
        """The job as its JobRequested shows it, for jobs the projector has not reached yet."""
        entry_id = await self._call(self._redis.get(self._names.job(job_id)))
        if entry_id is None:
            return None
        entries = await self._call(self._redis.xrange(self._names.events, entry_id, entry_id))
        if not entries:
            return None
        fields = cast(dict[str, str], entries[0][1])
        return evolve(None, decode(fields))

    async def ping(self) -> None:
        await self._call(self._redis.ping())

    async def lag_behind(self, last_entry_id: str, entries_read: int) -> ProjectorLag:
        """How far a projection at `last_entry_id` is behind the head of the log."""
        oldest = await self._call(
            self._redis.xrange(self._names.events, f"({last_entry_id}", "+", count=1)
        )
        if not oldest:
            return ProjectorLag(0, 0.0)
        info = await self._call(self._redis.xinfo_stream(self._names.events))
        oldest_id = cast(str, oldest[0][0])
        waiting_ms = time.time() * 1000 - int(oldest_id.split("-")[0])
        return ProjectorLag(max(info["entries-added"] - entries_read, 0), max(waiting_ms, 0) / 1000)


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
        projection: str = "jobs",
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
        async with _guard("postgres", self._timeout_s):
            try:
                found = await self._read_job(job_id)
            except psycopg.OperationalError:
                # A pooled connection that PostgreSQL closed (a restart) fails once; the pool
                # drops it, and the read is safe to repeat on a fresh one.
                found = await self._read_job(job_id)
        return to_state(found) if found else None

    async def _read_job(self, job_id: str) -> dict[str, Any] | None:
        async with self._pool.connection(timeout=self._timeout_s) as conn:
            cursor = await conn.execute(_JOB_QUERY, (job_id,))
            return cast(dict[str, Any] | None, await cursor.fetchone())

    async def status_counts(self) -> dict[JobStatus, int]:
        query = select(jobs.c.status, func.count()).group_by(jobs.c.status)
        async with _guard("postgres", self._timeout_s), self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        counts = dict.fromkeys(JobStatus, 0)
        counts.update({JobStatus(status): n for status, n in rows})
        return counts

    async def checkpoint(self) -> tuple[str, int]:
        table = projector_checkpoints
        query = select(table.c.last_entry_id, table.c.entries_read).where(
            table.c.name == self._projection
        )
        async with _guard("postgres", self._timeout_s), self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return (row[0], row[1]) if row else ("0-0", 0)


def utcnow() -> datetime:
    return datetime.now(UTC)
