"""A batch's reads against real PostgreSQL and Redis: its record (eventlog.batches), its counts
and its results in keyset chunks (readmodel.batches), and how api.batches puts the two together
for a reader of one tenant or an admin."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import create_async_engine

from api import batches as reads
from api.auth import Principal
from api.keys import Scope
from api.projection import ProjectionReader, connection_pool
from domain.cancellation import CancelReason
from domain.ids import new_job_id
from domain.job import JobResult, JobState, JobStatus
from domain.lanes import BULK
from eventlog import batches as records
from eventlog.connection import AsyncClient, connect_async
from readmodel import batches as sql
from readmodel.listing import Position, last_position
from readmodel.rows import to_row
from readmodel.tables import jobs

T = TypeVar("T")
ACME, GLOBEX = "acme", "globex"
START = datetime(2026, 12, 1, tzinfo=UTC)


def job(
    batch_id: str | None,
    status: JobStatus,
    created_at: datetime,
    tenant: str = ACME,
    custom_id: str | None = None,
    cancel_reason: str | None = None,
) -> JobState:
    done = status.is_terminal
    return JobState(
        job_id=new_job_id(random.randrange(3), int(created_at.timestamp() * 1000)),
        status=status,
        created_at=created_at,
        updated_at=created_at,
        model_version="spam-tfidf-lr-v1",
        result=JobResult("spam", 0.9, {"ham": 0.1, "spam": 0.9}, "spam-tfidf-lr-v1")
        if status is JobStatus.SUCCEEDED
        else None,
        error="boom" if status is JobStatus.FAILED else None,
        error_type="InferenceError" if status is JobStatus.FAILED else None,
        finished_at=created_at + timedelta(seconds=1) if done else None,
        tenant=tenant,
        lane=BULK,
        batch_id=batch_id,
        custom_id=custom_id,
        cancel_reason=cancel_reason,
    )


def insert(engine: Engine, states: Iterable[JobState]) -> None:
    with engine.begin() as conn:
        conn.execute(jobs.insert(), [to_row(state, "1-0") for state in states])


def a_batch(
    batch_id: str, count: int, rng: random.Random, tenant: str = ACME, chunk: int = 100
) -> list[JobState]:
    """A batch as files make them: chunks of jobs that share a created_at, of every status."""
    made = []
    for i in range(count):
        at = START + timedelta(seconds=i // chunk)
        status = rng.choice(list(JobStatus))
        reason = CancelReason.REQUESTED.value if status is JobStatus.CANCELLED else None
        made.append(job(batch_id, status, at, tenant, f"line-{i}", reason))
    return made


def reading(database_url: str, use: Callable[[ProjectionReader], Awaitable[T]]) -> T:
    async def main() -> T:
        engine = create_async_engine(database_url)
        projection = ProjectionReader(engine, 5.0, connection_pool(database_url, 2))
        await projection.open()
        try:
            return await use(projection)
        finally:
            await projection.close()
            await engine.dispose()

    return asyncio.run(main())


async def all_results(projection: ProjectionReader, tenant: str, batch_id: str, rows: int) -> list:
    found, after = [], None
    while True:
        chunk = await projection.rows(*sql.results_query(tenant, batch_id, after, rows))
        found += chunk
        if len(chunk) < rows:
            return found
        after = last_position(chunk)


def test_results_come_in_keyset_chunks_every_terminal_job_once(engine, database_url):
    rng = random.Random(7)
    batch, other = str(uuid.uuid4()), str(uuid.uuid4())
    states = a_batch(batch, 2500, rng)
    insert(engine, states)
    insert(engine, a_batch(other, 300, rng))  # another batch of the tenant
    insert(engine, a_batch(batch, 200, rng, tenant=GLOBEX))  # the same id, another tenant
    insert(engine, [job(None, JobStatus.SUCCEEDED, START) for _ in range(50)])  # no batch

    found = reading(database_url, lambda p: all_results(p, ACME, batch, 333))
    terminal = [s for s in states if s.status.is_terminal]
    ordered = sorted(terminal, key=lambda s: (s.created_at, s.job_id))
    assert [str(row["job_id"]) for row in found] == [s.job_id for s in ordered]
    lines = [json.loads(reads.result_line(row)) for row in found]
    by_id = {s.job_id: s for s in terminal}
    for line in lines:
        state = by_id[line["job_id"]]
        assert (line["custom_id"], line["status"]) == (state.custom_id, state.status.value)
        assert (line["result"] is None) == (state.status is not JobStatus.SUCCEEDED)
        assert line["error"] == state.error and line["cancel_reason"] == state.cancel_reason
        assert line["finished_at"].endswith("Z")
    assert lines[0].keys() == reads.ResultLine.model_fields.keys()


def test_the_counts_by_status_of_a_tenants_batch(engine, database_url):
    rng = random.Random(8)
    batch = str(uuid.uuid4())
    states = a_batch(batch, 1000, rng)
    states[0] = job(
        batch, JobStatus.CANCELLED, START, custom_id="c", cancel_reason="batch_cancelled"
    )
    insert(engine, states)
    insert(engine, a_batch(batch, 100, rng, tenant=GLOBEX))

    def counted(tenant: str) -> sql.Projected:
        async def use(projection: ProjectionReader) -> sql.Projected:
            return sql.projected(await projection.rows(*sql.summary_query(tenant, batch)))

        return reading(database_url, use)

    projected = counted(ACME)
    assert projected.counts == {s: sum(x.status is s for x in states) for s in JobStatus}
    assert projected.total == 1000 and projected.batch_cancelled == 1
    assert projected.created_at == START
    assert projected.finished_at == max(s.finished_at for s in states if s.finished_at)
    assert counted("initech").total == 0


def test_the_batch_index_serves_the_reads(engine, database_url):
    insert(engine, a_batch(str(uuid.uuid4()), 500, random.Random(9)))
    queries = [
        sql.summary_query(ACME, "b"),
        sql.results_query(ACME, "b", None, 1000),
        sql.results_query(ACME, "b", Position(START, str(uuid.uuid4())), 1000),
    ]
    for statement, params in queries:
        plan = explain(engine, statement, params)
        assert "jobs_tenant_batch_idx" in json.dumps(plan), plan
    assert '"Sort"' not in json.dumps(explain(engine, *queries[2]))


def explain(engine: Engine, statement: str, params: list[Any]) -> Any:
    numbered = statement
    for n in range(1, len(params) + 1):
        numbered = numbered.replace("%s", f":p{n}", 1)
    with engine.begin() as conn:
        conn.execute(text("ANALYZE jobs"))
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        return conn.execute(
            text(f"EXPLAIN (FORMAT JSON) {numbered}"),
            {f"p{n}": value for n, value in enumerate(params, 1)},
        ).scalar_one()


def test_an_admin_finds_the_tenant_of_a_batch(engine, database_url):
    rng = random.Random(10)
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    insert(engine, a_batch(mine, 10, rng) + a_batch(theirs, 10, rng, tenant=GLOBEX))
    insert(engine, a_batch(str(uuid.uuid4()), 10, rng, tenant="zeta"))

    async def tenants(projection: ProjectionReader) -> list[Any]:
        return [
            await projection.rows(*sql.tenant_query(batch_id))
            for batch_id in (mine, theirs, str(uuid.uuid4()))
        ]

    assert reading(database_url, tenants) == [[{"tenant": ACME}], [{"tenant": GLOBEX}], []]


# ---------------------------------------------------------------- the record


def with_redis(redis_url: str, cluster: bool, use: Callable[[AsyncClient], Awaitable[T]]) -> T:
    async def main() -> T:
        client = connect_async(redis_url, cluster)
        try:
            return await use(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_the_record_keeps_its_first_tenant_and_time_and_counts_every_part(
    redis_url, redis_cluster, redis_client, names
):
    batch = str(uuid.uuid4())
    later = START + timedelta(minutes=5)

    async def use(client: AsyncClient) -> tuple[Any, ...]:
        unknown = await records.read(client, names, batch)
        await records.add_jobs(client, names, batch, ACME, START, 1000, 3600)
        await records.add_jobs(client, names, batch, GLOBEX, later, 234, 7200)
        return unknown, await records.read(client, names, batch)

    unknown, record = with_redis(redis_url, redis_cluster, use)
    assert unknown is None
    assert record == records.BatchRecord(tenant=ACME, created_at=START, jobs=1234)
    key = names.batch(batch)
    assert redis_client.hgetall(key) == {
        "tenant": ACME,
        "created_at": START.isoformat(),
        "jobs": "1234",
    }
    assert 3600 < redis_client.ttl(key) <= 7200  # each part renews it
    assert records.read_blocking(redis_client, names, batch) == record


def test_a_cancel_is_seen_by_its_mark(redis_url, redis_cluster, redis_client, names):
    batch = str(uuid.uuid4())

    async def asked(client: AsyncClient) -> bool:
        return await records.cancel_requested(client, names, batch)

    assert not with_redis(redis_url, redis_cluster, asked)
    redis_client.set(names.batch_cancelled(0, batch), "1")
    assert with_redis(redis_url, redis_cluster, asked)


# ---------------------------------------------------------------- record and projection together


def test_jobs_not_projected_yet_count_as_queued(
    engine, database_url, redis_url, redis_cluster, redis_client, names
):
    batch = str(uuid.uuid4())
    acme = Principal(ACME, frozenset({Scope.READ}))
    globex = Principal(GLOBEX, frozenset({Scope.READ}))
    admin = Principal(GLOBEX, frozenset({Scope.ADMIN}))

    async def use(projection: ProjectionReader) -> None:
        client = connect_async(redis_url, redis_cluster)
        svc: Any = SimpleNamespace(
            projection=projection,
            redis=client,
            settings=SimpleNamespace(names=names),
            timeout_s=5.0,
        )

        async def body(who: Principal = acme) -> reads.BatchBody:
            found = await reads.find(svc, who, batch)
            assert found is not None and found.tenant == ACME
            return found.body

        try:
            assert await reads.find(svc, acme, batch) is None
            await records.add_jobs(client, names, batch, ACME, START, 5, 3600)
            now = await body()
            assert (now.status, now.counts.total, now.counts.queued) == ("in_progress", 5, 5)
            assert now.created_at == START and now.finished_at is None

            insert(
                engine, [job(batch, JobStatus.SUCCEEDED, START, custom_id=str(i)) for i in range(3)]
            )
            now = await body()
            assert (now.counts.total, now.counts.queued, now.counts.succeeded) == (5, 2, 3)

            insert(engine, [job(batch, JobStatus.FAILED, START, custom_id=str(i)) for i in (3, 4)])
            now = await body()
            assert (now.status, now.counts.queued, now.counts.failed) == ("completed", 0, 2)
            assert now.finished_at == START + timedelta(seconds=1)

            redis_client.set(names.batch_cancelled(0, batch), "1")
            assert (await body()).status == "cancelled"

            # Another tenant's reader does not find it; an admin of any tenant does, with the
            # record or, once it expired, without.
            assert await reads.find(svc, globex, batch) is None
            await body(admin)
            redis_client.delete(names.batch(batch))
            await body(admin)
            assert (await body()).counts.total == 5
            assert await reads.find(svc, globex, batch) is None
        finally:
            await client.aclose()

    reading(database_url, use)
