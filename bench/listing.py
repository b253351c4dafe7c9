"""Listing mode (issue #16): GET /v1/jobs, a page of 100 from a table of 1,000,000 jobs, for each
filter, p95 under 20 ms.

Measured as users meet it: sequential requests through HTTP against the real API process (one
keep-alive connection), each walk following `next_cursor` from the first page for several
pages, with the simplest read, GET /v1/jobs/{id} of one job, measured in the same run beside
every filter as the reference, and the CPU per request of the API process (and of PostgreSQL).

The jobs are seeded straight into a database of their own on the bench's PostgreSQL server
(`inferflow_bench_listing`) with COPY, the secondary indexes built after the load: a few tenants
of different sizes, every status, three model versions, labels on the succeeded ones, and a
share of them in batches of 1000 that share one created_at (ties, as a batch's items have).
The table is kept: a rerun on the same server finds it seeded (its comment names the seed) and
skips straight to the measurements. The filters are measured on the largest tenant.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg

from api.keys import Scope
from api.listing import MAX_LIMIT, digest, encode_cursor
from bench import cpu
from bench.checkpoint import plain_url
from bench.clients import bearer
from bench.http import Connection, Reply
from bench.options import Options
from bench.report import Section, ms, quantiles_ms
from bench.stack import running_stack, tenant_key
from devstack.databases import admin, database_url
from devstack.servers import postgres_server
from domain.ids import new_job_id
from readmodel.listing import Filters, Position
from readmodel.migrations import upgrade

DATABASE = "inferflow_bench_listing"
PATH = "/v1/jobs"
TARGET_P95_MS = 20.0
WARMUP_REQUESTS = 20  # per filter, and of the reference, before each is measured
KEY_NAME = "bench-listing"
SEED = 16  # of the random spread; a new spread needs a new SEED_NAME
SEED_NAME = "bench-listing seed 1"
# (tenant, share of the jobs): the filters are measured on the first, the largest.
TENANTS = (("tenant-a", 0.70), ("tenant-b", 0.20), ("tenant-c", 0.07), ("tenant-d", 0.03))
STATUSES = (
    ("succeeded", 0.86),
    ("failed", 0.04),
    ("cancelled", 0.03),
    ("queued", 0.05),
    ("started", 0.02),
)
MODELS = (("spam-tfidf-lr-v1", 0.6), ("spam-tfidf-lr-v2", 0.3), ("spam-nb-v3", 0.1))
SPAM_SHARE = 0.3
CANCEL_REASONS = ("requested", "batch_cancelled", "expired", "timed_out")
BATCH_SIZE = 1000
BATCH_SHARE = 0.4  # of the jobs, in batches
SPAN = timedelta(days=30)  # from the oldest job to the newest
COLUMNS = (
    "job_id", "status", "model_version", "result_label", "result_score",
    "result_probabilities", "result_model_version", "error_type", "error", "retry_count",
    "attempts", "created_at", "started_at", "finished_at", "updated_at", "last_entry_id",
    "tenant", "lane", "batch_id", "custom_id", "deadline", "cancel_reason",
)  # fmt: skip


@dataclass(frozen=True)
class Submission:
    """One job alone, or one batch of BATCH_SIZE: what the seed spreads over time."""

    created_at: datetime
    tenant: str
    model_version: str
    batch_id: str | None


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([value for value, _ in weighted], [w for _, w in weighted])[0]


def submissions(jobs: int, rng: random.Random, newest: datetime) -> list[Submission]:
    """The seed's submissions, oldest first, `jobs` jobs in all."""
    batches = int(jobs * BATCH_SHARE) // BATCH_SIZE
    singles = jobs - batches * BATCH_SIZE
    kinds = [True] * batches + [False] * singles
    rng.shuffle(kinds)
    span_us = SPAN // timedelta(microseconds=1)
    times = sorted(rng.randrange(span_us) for _ in kinds)
    oldest = newest - SPAN
    return [
        Submission(
            oldest + timedelta(microseconds=at),
            _pick(rng, TENANTS),
            _pick(rng, MODELS),
            str(uuid.UUID(int=rng.getrandbits(128), version=4)) if in_batch else None,
        )
        for at, in_batch in zip(times, kinds, strict=True)
    ]


def job_rows(jobs: int, rng: random.Random, newest: datetime) -> Iterator[tuple[Any, ...]]:
    """The seed's rows, in COLUMNS' order."""
    for submission in submissions(jobs, rng, newest):
        count = BATCH_SIZE if submission.batch_id else 1
        for item in range(count):
            yield _row(submission, item, rng)


def _row(s: Submission, item: int, rng: random.Random) -> tuple[Any, ...]:
    status = _pick(rng, STATUSES)
    created = s.created_at
    started = None if status == "queued" else created + timedelta(milliseconds=rng.uniform(1, 50))
    finished = None
    label = score = probabilities = result_model = error_type = error = reason = None
    if status == "succeeded":
        label = "spam" if rng.random() < SPAM_SHARE else "ham"
        score = round(rng.uniform(0.5, 1.0), 4)
        other = "ham" if label == "spam" else "spam"
        probabilities = json.dumps({label: score, other: round(1 - score, 4)})
        result_model = s.model_version
    elif status == "failed":
        error_type, error = "InferenceError", "the model raised: input could not be vectorised"
    elif status == "cancelled":
        reason = rng.choice(CANCEL_REASONS)
        if reason != "timed_out" and (reason == "expired" or rng.random() < 0.5):
            started = None  # cancelled while queued
    if status in ("succeeded", "failed", "cancelled"):
        finished = (started or created) + timedelta(milliseconds=rng.uniform(2, 500))
    updated = finished or started or created
    return (
        new_job_id(0, int(created.timestamp() * 1000)),
        status,
        s.model_version,
        label,
        score,
        probabilities,
        result_model,
        error_type,
        error,
        0,
        0 if started is None else 1,
        created,
        started,
        finished,
        updated,
        f"{int(updated.timestamp() * 1000)}-{item}",
        s.tenant,
        "bulk" if s.batch_id else "interactive",
        s.batch_id,
        f"item-{item}" if s.batch_id else None,
        None,
        reason,
    )


def seeded(server_url: str, jobs: int, database: str = DATABASE, report: Any = print) -> str:
    """The URL of the listing's `database` on the server of `server_url`, migrated and
    holding the seed of `jobs` jobs (seeded now unless it already was)."""
    with admin(server_url) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if found.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{database}"')
    url = database_url(server_url, database)
    upgrade(url)
    name = f"{SEED_NAME}, {jobs} jobs"
    with psycopg.connect(plain_url(url), autocommit=True) as conn:
        row = conn.execute("SELECT obj_description('jobs'::regclass, 'pg_class')").fetchone()
        if row and row[0] == name:
            report(f"listing: {database} already holds {name}")
            return url
        report(f"listing: seeding {database} with {jobs} jobs")
        seed(conn, jobs, name)
    return url


def seed(conn: psycopg.Connection[Any], jobs: int, name: str) -> None:
    """Replace the jobs table's rows by the seed's, loaded with COPY with the secondary indexes
    dropped (one build each afterwards is much faster than a million insertions into each)."""
    indexes = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'jobs'"
        " AND indexname <> 'jobs_pkey'"
    ).fetchall()
    with conn.transaction():
        conn.execute("TRUNCATE jobs")
        conn.execute("COMMENT ON TABLE jobs IS NULL")
        for index, _ in indexes:
            conn.execute(f'DROP INDEX "{index}"')
        rng = random.Random(SEED)
        with conn.cursor().copy(f"COPY jobs ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in job_rows(jobs, rng, datetime.now(UTC)):
                copy.write_row(row)
        conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
        for _, definition in indexes:
            conn.execute(definition)
        conn.execute(f"COMMENT ON TABLE jobs IS '{name}'")
    conn.execute("VACUUM ANALYZE jobs")


# The measurements


@dataclass(frozen=True)
class Case:
    """One filter's listing: its query parameters, and the cursor its walks start from (none:
    the first page)."""

    name: str
    params: dict[str, Any]
    start: str | None = None
    target: bool = True  # held to TARGET_P95_MS


def cases(url: str, tenant: str, limit: int) -> list[Case]:
    """The filters measured, with values the seed holds for `tenant`."""
    with psycopg.connect(plain_url(url), autocommit=True) as conn:
        newest = _one(conn, "SELECT max(created_at) FROM jobs WHERE tenant = %s", tenant)
        # The 100th batch from the newest: all of its jobs, 10 pages of 100.
        batch = _one(
            conn,
            "SELECT batch_id FROM jobs WHERE tenant = %s AND batch_id IS NOT NULL"
            " ORDER BY created_at DESC LIMIT 1 OFFSET %s",
            tenant,
            BATCH_SIZE * 100,
        )
        middle = conn.execute(
            "SELECT created_at, job_id FROM jobs WHERE tenant = %s"
            " ORDER BY created_at DESC, job_id DESC LIMIT 1 OFFSET"
            " (SELECT count(*) / 2 FROM jobs WHERE tenant = %s)",
            (tenant, tenant),
        ).fetchone()
    assert middle is not None, "the tenant has jobs"
    day_before = newest - timedelta(days=15)
    everything: dict[str, Any] = {"limit": limit}
    deep = encode_cursor(Position(middle[0], str(middle[1])), digest(tenant, Filters()))
    return [
        Case("none", everything),
        Case("none, from the middle", everything, start=deep),
        Case("status=failed", {**everything, "status": "failed"}),
        Case("status=queued&status=started", {**everything, "status": ["queued", "started"]}),
        Case("model_version=spam-nb-v3", {**everything, "model_version": "spam-nb-v3"}),
        Case("label=spam", {**everything, "label": "spam"}),
        Case("batch_id (one batch of 1000)", {**everything, "batch_id": batch}),
        Case(
            "created range (one day, 15 days back)",
            {
                **everything,
                "created_after": day_before.isoformat(),
                "created_before": (day_before + timedelta(days=1)).isoformat(),
            },
        ),
        Case("none, limit=1000", {**everything, "limit": MAX_LIMIT}, target=False),
    ]


def _one(conn: psycopg.Connection[Any], query: str, *params: Any) -> Any:
    row = conn.execute(query, params).fetchone()
    if row is None or row[0] is None:
        raise RuntimeError(f"the seed has no answer to {query!r}")
    return row[0]


@dataclass
class Measured:
    latencies_s: list[float]
    api_cpu_s: float
    postgres_cpu_s: float
    body_bytes: int

    @property
    def requests(self) -> int:
        return len(self.latencies_s)

    def per_request_ms(self, seconds: float) -> float:
        return seconds / max(self.requests, 1) * 1000


class Client:
    """One user: sequential requests on one keep-alive connection, each timed; and the CPU
    of the API process and of its PostgreSQL backends (not the server's other work)."""

    def __init__(self, url: str, key: str, api_pid: int, database_url: str) -> None:
        self.conn = Connection.to(url, headers=bearer(key))
        self.api_pid = api_pid
        self.database = psycopg.connect(plain_url(database_url), autocommit=True)

    def close(self) -> None:
        self.conn.close()
        self.database.close()

    def backends(self) -> list[int]:
        """The API's connections' server processes: every other one to this database."""
        rows = self.database.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        ).fetchall()
        return [int(pid) for (pid,) in rows]

    async def get(self, target: str) -> tuple[float, Reply]:
        began = time.perf_counter()
        reply = await self.conn.request("GET", target)
        took = time.perf_counter() - began
        if reply.status != 200:
            raise RuntimeError(f"GET {target}: {reply.status} {reply.body[:300]!r}")
        return took, reply

    async def walks(self, case: Case, requests: int, pages: int) -> Measured:
        """Walks of up to `pages` pages from the case's start, until `requests` are made."""
        before = cpu.sample({"api": self.api_pid})
        latencies: list[float] = []
        size = 0
        while len(latencies) < requests:
            cursor = case.start
            for _ in range(pages):
                query = {**case.params, **({"cursor": cursor} if cursor else {})}
                took, reply = await self.get(f"{PATH}?{urlencode(query, doseq=True)}")
                latencies.append(took)
                size += len(reply.body)
                cursor = reply.json()["next_cursor"]
                if cursor is None or len(latencies) == requests:
                    break
        return self._measured(before, latencies, size)

    async def reads(self, job_id: str, requests: int) -> Measured:
        """The reference: GET /v1/jobs/{id} of one job, `requests` times."""
        before = cpu.sample({"api": self.api_pid})
        latencies: list[float] = []
        size = 0
        for _ in range(requests):
            took, reply = await self.get(f"{PATH}/{job_id}")
            latencies.append(took)
            size += len(reply.body)
        return self._measured(before, latencies, size)

    def _measured(self, before: cpu.Sample, latencies: list[float], size: int) -> Measured:
        after = cpu.sample({"api": self.api_pid})
        api_s = cpu.spent(before, after).get("api", 0.0)
        backends = [pid for pid in self.backends() if pid in before and pid in after]
        database_s = sum(after[pid][1] - before[pid][1] for pid in backends)
        return Measured(latencies, api_s, database_s, size)


async def measure(
    client: Client, all_cases: list[Case], job_id: str, o: Options
) -> list[tuple[Case, Measured, Measured]]:
    """Each case, after a warm-up, then the reference beside it, in the same order each time."""
    await client.conn.open()
    results = []
    for case in all_cases:
        await client.walks(case, WARMUP_REQUESTS, o.listing_pages)
        await client.reads(job_id, WARMUP_REQUESTS)
        listed = await client.walks(case, o.listing_requests, o.listing_pages)
        read = await client.reads(job_id, o.listing_requests)
        results.append((case, listed, read))
    client.close()
    return results


def listing(work: Path, o: Options) -> Section:
    with postgres_server() as server_url:
        url = seeded(server_url, o.listing_jobs)
        tenant = TENANTS[0][0]
        with psycopg.connect(plain_url(url), autocommit=True) as conn:
            # This run's key only: one per run would pile up in the kept database.
            conn.execute("DELETE FROM api_keys WHERE name = %s", (KEY_NAME,))
            job_id = str(_one(conn, "SELECT job_id FROM jobs WHERE tenant = %s LIMIT 1", tenant))
        key = tenant_key(url, tenant, (Scope.READ,), KEY_NAME)
        all_cases = cases(url, tenant, o.listing_limit)
        env = {**o.env, "DATABASE_URL": url}
        with running_stack(work, roles=("api",), api_workers=o.api_workers, env=env) as stack:
            client = Client(stack.url, key, stack.procs["api"].pid, url)
            results = asyncio.run(measure(client, all_cases, job_id, o))
    return _section(results, o)


def _section(results: list[tuple[Case, Measured, Measured]], o: Options) -> Section:
    title = (
        f"listing: GET /v1/jobs, pages of {o.listing_limit} from {o.listing_jobs} jobs "
        f"({TENANTS[0][1]:.0%} of them the tenant's), {o.listing_requests} sequential requests "
        f"per filter in walks of {o.listing_pages} pages"
    )
    section = Section(title, "listing")
    reads = [s for _, _, read in results for s in read.latencies_s]
    read_api = sum(read.api_cpu_s for _, _, read in results)
    read_pg = sum(read.postgres_cpu_s for _, _, read in results)
    reference = quantiles_ms(reads)
    per_read = read_api / max(len(reads), 1) * 1000
    section.row(
        "reference",
        f"GET /v1/jobs/{{id}} of one job, beside each filter: p50/95/99 {ms(reads)} ms, "
        f"API CPU {per_read:.2f} ms/request, its PostgreSQL backends "
        f"{read_pg / max(len(reads), 1) * 1000:.2f}",
    )
    section.data["reference"] = {
        **reference,
        "api_cpu_ms": per_read,
        "postgres_cpu_ms": read_pg / max(len(reads), 1) * 1000,
    }
    section.data["filters"] = []
    for case, listed, read in results:
        found = quantiles_ms(listed.latencies_s)
        api_ms = listed.per_request_ms(listed.api_cpu_s)
        pg_ms = listed.per_request_ms(listed.postgres_cpu_s)
        kb = listed.body_bytes / max(listed.requests, 1) / 1024
        versus = found["p95"] / quantiles_ms(read.latencies_s)["p95"]
        section.row(
            case.name,
            f"p50/95/99 {ms(listed.latencies_s)} ms ({versus:.1f}x the reference's p95 beside "
            f"it); API CPU {api_ms:.2f} ms/request, its PostgreSQL backends {pg_ms:.2f}; "
            f"{kb:.0f} KiB/page",
        )
        section.data["filters"].append(
            {
                "filter": case.name,
                "params": {k: v for k, v in case.params.items() if k != "batch_id"},
                "requests": listed.requests,
                **found,
                "reference_p95": quantiles_ms(read.latencies_s)["p95"],
                "api_cpu_ms": api_ms,
                "postgres_cpu_ms": pg_ms,
                "kib_per_page": kb,
                "target": case.target,
            }
        )
    return section


def check(sections: list[Section], table: Section) -> None:
    """Issue #16's target, in the run's table of targets: p95 of a page of 100 per filter."""
    for s in sections:
        if s.mode != "listing":
            continue
        for found in s.data.get("filters", []):
            if not found["target"]:
                continue
            p95 = found["p95"]
            ok = p95 < TARGET_P95_MS
            name = f"#16 listing p95 < {TARGET_P95_MS:.0f} ms: {found['filter']}"
            table.row(name, f"{p95:.1f} ms: {'met' if ok else 'MISSED'}")
            verdict = "met" if ok else "missed"
            table.data.setdefault("targets", []).append(
                {"target": name, "measured": p95, "unit": "ms", "verdict": verdict}
            )
