"""GET /v1/jobs's reads against a real PostgreSQL, rows inserted directly: each filter and their
combinations, paging through everything (every row once, ties on created_at included), pages
that stay put while newer jobs arrive, tenants apart, and the plans: each filter reads its
index in the page's order, with no sort."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, TypeVar

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import create_async_engine

from api.listing import JobPage, ListingQuery, read_page
from api.projection import ProjectionReader, connection_pool
from api.schemas import JobBody
from bench import listing as bench_listing
from bench.checkpoint import plain_url
from devstack.databases import drop_database
from domain.ids import new_job_id
from domain.job import JobResult, JobState, JobStatus
from domain.lanes import BULK
from readmodel.listing import Filters, Position, page_query
from readmodel.rows import to_row
from readmodel.tables import jobs

T = TypeVar("T")
TENANT, OTHER = "acme", "globex"
START = datetime(2026, 12, 1, tzinfo=UTC)
MODELS = ("spam-tfidf-lr-v1", "spam-tfidf-lr-v2")
STATUSES = list(JobStatus)


def job(
    created_at: datetime,
    status: JobStatus = JobStatus.SUCCEEDED,
    tenant: str = TENANT,
    model_version: str = MODELS[0],
    label: str | None = "ham",
    batch_id: str | None = None,
) -> JobState:
    result = None
    if status is JobStatus.SUCCEEDED and label is not None:
        result = JobResult(label, 0.9, {label: 0.9}, model_version)
    return JobState(
        job_id=new_job_id(random.randrange(4), int(created_at.timestamp() * 1000)),
        status=status,
        created_at=created_at,
        updated_at=created_at,
        model_version=model_version,
        result=result,
        tenant=tenant,
        lane=BULK if batch_id else "interactive",
        batch_id=batch_id,
    )


def insert(engine: Engine, states: Iterable[JobState]) -> None:
    rows = [to_row(state, "1-0") for state in states]
    with engine.begin() as conn:
        conn.execute(jobs.insert(), rows)


def spread(count: int, rng: random.Random, tenant: str = TENANT) -> list[JobState]:
    """`count` jobs of every kind; some in batches, whose jobs share one created_at."""
    made: list[JobState] = []
    at = START
    while len(made) < count:
        at += timedelta(microseconds=rng.randrange(1, 5_000_000))
        status = rng.choice(STATUSES)
        kind = dict(
            status=status,
            tenant=tenant,
            model_version=rng.choice(MODELS),
            label=rng.choice(("ham", "spam")) if status is JobStatus.SUCCEEDED else None,
        )
        if rng.random() < 0.1:
            batch = f"batch-{len(made)}"
            made += [job(at, batch_id=batch, **kind) for _ in range(rng.randrange(2, 30))]
        else:
            made.append(job(at, **kind))
    return made[:count]


def newest_first(states: Iterable[JobState]) -> list[str]:
    ordered = sorted(states, key=lambda s: (s.created_at, s.job_id), reverse=True)
    return [s.job_id for s in ordered]


def passes(state: JobState, f: Filters) -> bool:
    label = state.result.label if state.result else None
    return (
        (not f.statuses or state.status in f.statuses)
        and (f.model_version is None or state.model_version == f.model_version)
        and (f.label is None or label == f.label)
        and (f.batch_id is None or state.batch_id == f.batch_id)
        and (f.created_after is None or state.created_at >= f.created_after)
        and (f.created_before is None or state.created_at < f.created_before)
    )


def reading(database_url: str, use: Callable[[ProjectionReader], Awaitable[T]]) -> T:
    """`use(projection)` with the API's own reader of this test's database."""

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


async def page_of(
    projection: ProjectionReader, params: dict[str, Any], tenant: str = TENANT
) -> JobPage:
    svc: Any = SimpleNamespace(projection=projection)
    return await read_page(svc, tenant, ListingQuery.model_validate(params))


async def walk(
    projection: ProjectionReader,
    params: dict[str, Any],
    tenant: str = TENANT,
    between: Callable[[], None] | None = None,
) -> list[str]:
    """Every job id the pages give, following next_cursor to the last page."""
    listed: list[str] = []
    cursor = None
    for _ in range(10_000):
        page = await page_of(projection, {**params, "cursor": cursor}, tenant)
        assert len(page.items) <= params.get("limit", 100)
        listed += [item.job_id for item in page.items]
        if page.next_cursor is None:
            return listed
        assert page.items, "a page with a next cursor has jobs"
        cursor = page.next_cursor
        if between:
            between()
    raise AssertionError("the pages never ended")


def as_params(f: Filters) -> dict[str, Any]:
    params: dict[str, Any] = {"status": [s.value for s in f.statuses]}
    for name in ("model_version", "label", "batch_id", "created_after", "created_before"):
        if getattr(f, name) is not None:
            params[name] = getattr(f, name)
    return params


@pytest.fixture
def seeded(engine: Engine) -> list[JobState]:
    rng = random.Random(16)
    mine = spread(400, rng)
    insert(engine, mine + spread(150, rng, OTHER))
    return mine


def filters_of(states: list[JobState]) -> list[Filters]:
    batch = next(s.batch_id for s in states if s.batch_id)
    middle = sorted(s.created_at for s in states)[len(states) // 2]
    ties = next(s.created_at for s in states if s.batch_id)  # a bound on a tie
    return [
        Filters(),
        *(Filters(statuses=(status,)) for status in JobStatus),
        Filters(statuses=(JobStatus.QUEUED, JobStatus.STARTED)),
        Filters(statuses=tuple(JobStatus)),
        Filters(model_version=MODELS[1]),
        Filters(model_version="no-such-model"),
        Filters(label="spam"),
        Filters(batch_id=batch),
        Filters(created_after=middle),
        Filters(created_before=middle),
        Filters(created_after=ties, created_before=ties + timedelta(seconds=30)),
        Filters(created_after=middle, created_before=START),  # empty
        Filters(statuses=(JobStatus.SUCCEEDED,), label="spam", model_version=MODELS[0]),
        Filters(statuses=(JobStatus.FAILED, JobStatus.CANCELLED), created_before=middle),
        Filters(batch_id=batch, statuses=(JobStatus.SUCCEEDED,)),
    ]


def test_each_filter_lists_exactly_its_jobs_newest_first(database_url, seeded):
    cases = filters_of(seeded)

    async def use(projection: ProjectionReader) -> list[list[str]]:
        return [await walk(projection, {**as_params(f), "limit": 1000}) for f in cases]

    for f, listed in zip(cases, reading(database_url, use), strict=True):
        expected = newest_first(s for s in seeded if passes(s, f))
        assert listed == expected, f


@pytest.mark.parametrize("limit", [1, 2, 7, 29, 100, 399, 400, 401])
def test_paging_through_everything_gives_every_job_exactly_once(database_url, seeded, limit):
    listed = reading(database_url, lambda p: walk(p, {"limit": limit}))
    assert listed == newest_first(seeded)
    assert len(set(listed)) == len(seeded)


def test_paging_through_a_filter_gives_its_jobs_exactly_once(database_url, seeded):
    cases = filters_of(seeded)

    async def use(projection: ProjectionReader) -> list[list[str]]:
        return [await walk(projection, {**as_params(f), "limit": 3}) for f in cases]

    for f, listed in zip(cases, reading(database_url, use), strict=True):
        assert listed == newest_first(s for s in seeded if passes(s, f)), f


def test_jobs_tied_on_created_at_are_ordered_by_id_and_split_across_pages(database_url, engine):
    at = START + timedelta(hours=1)
    tied = [job(at, batch_id="one-instant") for _ in range(25)]
    insert(
        engine, [*tied, job(at - timedelta(microseconds=1)), job(at + timedelta(microseconds=1))]
    )
    listed = reading(database_url, lambda p: walk(p, {"limit": 4}))
    assert len(listed) == 27 and len(set(listed)) == 27
    assert listed[1:26] == sorted((s.job_id for s in tied), reverse=True)


def test_the_last_page_has_no_cursor_even_when_it_is_full(database_url, engine):
    insert(engine, [job(START + timedelta(seconds=n)) for n in range(6)])

    async def use(projection: ProjectionReader) -> list[JobPage]:
        first = await page_of(projection, {"limit": 3})
        second = await page_of(projection, {"limit": 3, "cursor": first.next_cursor})
        return [first, second, await page_of(projection, {"limit": 6})]

    first, second, whole = reading(database_url, use)
    assert first.next_cursor is not None and len(second.items) == 3
    assert second.next_cursor is None and whole.next_cursor is None


def test_jobs_arriving_while_paging_never_shift_later_pages(database_url, engine, seeded):
    rng = random.Random(7)
    newer = iter(range(10_000))

    def arrive() -> None:
        # Newer than every job listed so far, as a job accepted now is.
        at = datetime.now(UTC) + timedelta(seconds=next(newer))
        insert(engine, [job(at, status=rng.choice(STATUSES)) for _ in range(rng.randrange(1, 9))])

    listed = reading(database_url, lambda p: walk(p, {"limit": 13}, between=arrive))
    assert listed == newest_first(seeded)


def test_a_tenant_never_lists_another_tenants_jobs(database_url, engine, seeded):
    others = spread(10, random.Random(3), "initech")
    insert(engine, others)

    async def use(projection: ProjectionReader) -> tuple[list[str], list[str], list[str]]:
        return (
            await walk(projection, {"limit": 1000}, tenant="initech"),
            await walk(projection, {"limit": 1000}, tenant="nobody"),
            await walk(projection, {"limit": 1000, "batch_id": seeded_batch}, tenant="initech"),
        )

    seeded_batch = next(s.batch_id for s in seeded if s.batch_id)
    theirs, nobodys, foreign_batch = reading(database_url, use)
    assert theirs == newest_first(others)
    assert nobodys == [] and foreign_batch == []


def test_the_created_bounds_are_at_or_after_and_strictly_before(database_url, engine):
    at = START + timedelta(days=1)
    before, on, after = job(at - timedelta(microseconds=1)), job(at), job(at + timedelta(1))
    insert(engine, [before, on, after])
    bound = at.isoformat()

    async def use(projection: ProjectionReader) -> tuple[list[str], list[str]]:
        return (
            await walk(projection, {"created_after": bound}),
            await walk(projection, {"created_before": bound}),
        )

    from_on, below = reading(database_url, use)
    assert from_on == [after.job_id, on.job_id]
    assert below == [before.job_id]


def test_the_label_filter_finds_a_label_stored_with_a_replacement_character(database_url, engine):
    odd = job(START, label="odd\x00label")  # stored as odd\ufffdlabel, as the projector does
    insert(engine, [odd, job(START, label=None, status=JobStatus.FAILED)])
    listed = reading(database_url, lambda p: walk(p, {"label": "odd\x00label"}))
    assert listed == [odd.job_id]


def test_a_page_holds_the_jobs_as_a_read_of_each_shows_them(database_url, engine):
    done = replace(
        job(START, batch_id="b-1"),
        custom_id="item-7",
        deadline=START + timedelta(minutes=5),
        started_at=START + timedelta(milliseconds=3),
        finished_at=START + timedelta(milliseconds=9),
        attempts=1,
    )
    insert(engine, [done])

    async def use(projection: ProjectionReader) -> tuple[JobPage, Any]:
        return await page_of(projection, {}), await projection.job(done.job_id)

    page, read = reading(database_url, use)
    assert [item.model_dump() for item in page.items] == [JobBody.of(read).model_dump()]
    assert page.items[0].custom_id == "item-7" and page.items[0].batch_id == "b-1"


# The plans


def plan_of(engine: Engine, sql: str, params: list[Any]) -> dict[str, Any]:
    """The plan PostgreSQL picks when nothing but an index could give the page's order."""
    numbered = itertools.count(1)
    statement = re.sub("%s", lambda _: f":p{next(numbered)}", sql)
    with engine.begin() as conn:
        for setting in ("enable_seqscan", "enable_sort", "enable_bitmapscan"):
            conn.execute(text(f"SET LOCAL {setting} = off"))
        found = conn.execute(
            text(f"EXPLAIN (FORMAT JSON) {statement}"),
            {f"p{n}": value for n, value in enumerate(params, 1)},
        ).scalar_one()
    return (found if isinstance(found, list) else json.loads(found))[0]["Plan"]


def nodes(plan: dict[str, Any]) -> Iterable[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        (Filters(), "jobs_tenant_created_idx"),
        (
            Filters(created_after=START, created_before=START + timedelta(1)),
            "jobs_tenant_created_idx",
        ),
        (Filters(statuses=(JobStatus.FAILED,)), "jobs_tenant_status_idx"),
        (Filters(statuses=(JobStatus.QUEUED, JobStatus.STARTED)), "jobs_tenant_status_idx"),
        (Filters(model_version=MODELS[0]), "jobs_tenant_model_idx"),
        (Filters(label="spam"), "jobs_tenant_label_idx"),
        (Filters(batch_id="b"), "jobs_tenant_batch_idx"),
    ],
)
def test_each_filter_reads_its_index_in_page_order_without_a_sort(engine, seeded, filters, index):
    with engine.begin() as conn:
        conn.execute(text("ANALYZE jobs"))
    after = job(START + timedelta(days=1))
    for position in (None, Position(after.created_at, after.job_id)):
        plan = plan_of(engine, *page_query(TENANT, filters, position, 101))
        found = list(nodes(plan))
        assert not [n for n in found if n["Node Type"] in ("Sort", "Incremental Sort")], plan
        scans = [n for n in found if "Index Name" in n]
        assert scans and all(n["Index Name"] == index for n in scans), plan
        assert all(n["Scan Direction"] == "Backward" for n in scans), plan
        if position is not None:
            assert all("ROW(created_at, job_id) <" in n["Index Cond"] for n in scans), plan


# The bench's seed


def test_the_bench_seeds_its_jobs_once_and_keeps_them(postgres_url):
    database = f"inferflow_test_listing_{uuid.uuid4().hex[:8]}"
    try:
        url = bench_listing.seeded(postgres_url, 3000, database, report=lambda _: None)
        with psycopg.connect(plain_url(url), autocommit=True) as conn:
            count, tenants, statuses, ties = conn.execute(
                "SELECT count(*), count(DISTINCT tenant), count(DISTINCT status),"
                " count(*) - count(DISTINCT (created_at, tenant)) FROM jobs"
            ).fetchone()
            assert (count, tenants, statuses) == (3000, 4, 5)
            assert ties > 0, "a batch's jobs share their created_at"
            conn.execute("DELETE FROM jobs WHERE status = 'failed'")  # a mark of this seed
            kept = conn.execute("SELECT count(*) FROM jobs").fetchone()[0]
            indexes = conn.execute(
                "SELECT count(*) FROM pg_indexes WHERE tablename = 'jobs'"
            ).fetchone()[0]
        assert bench_listing.seeded(postgres_url, 3000, database, report=lambda _: None) == url
        with psycopg.connect(plain_url(url), autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == kept
        # Another size is another seed: the rows are replaced, the indexes rebuilt.
        bench_listing.seeded(postgres_url, 2000, database, report=lambda _: None)
        with psycopg.connect(plain_url(url), autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM jobs").fetchone()[0] == 2000
            assert (
                conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 'jobs'").fetchone()[
                    0
                ]
                == indexes
            )
    finally:
        drop_database(postgres_url, database)
