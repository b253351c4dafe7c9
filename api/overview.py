"""The overview of GET /v1/stats and of the console's first page: the jobs that ended in the last
minutes by outcome, per time bucket and per model, with their times from submission to the end;
the unfinished jobs; and, for an admin, the log's shape per partition (length, consumer-group
lag, pending entries and the age of the oldest, dead letters).

Read from PostgreSQL (readmodel.stats) and Redis (eventlog.gauges) at each request, so it needs
no Prometheus. A tenant's key sees its own jobs only, and no Redis figures: the streams are
shared by every tenant of a partition. An admin's key sees every tenant's jobs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, Field

from api.auth import Principal
from api.deps import Services
from api.guard import guarded_again
from eventlog.gauges import Samples, sample_async
from readmodel import stats
from readmodel.stats import Tally

MAX_MINUTES = 60
# Buckets per window: a chart's points.
BUCKETS = 30

Minutes = Annotated[
    int,
    Query(ge=1, le=MAX_MINUTES, description="The window: the jobs that ended in these minutes."),
]


class OutcomeCounts(BaseModel):
    succeeded: int
    failed: int
    cancelled: int


class Latency(BaseModel):
    """Milliseconds from a job's submission (its created_at) to its end; null without jobs."""

    p50: float | None
    p95: float | None
    p99: float | None


class BucketStats(BaseModel):
    start: datetime = Field(description="The bucket's start; it lasts `bucket_s`.")
    ended: OutcomeCounts
    latency_ms: Latency


class ModelStats(BaseModel):
    model_version: str
    ended: OutcomeCounts
    latency_ms: Latency


class PartitionStats(BaseModel):
    partition: int
    stream_length: int = Field(description="Entries in the partition's lanes.")
    lag: int | None = Field(
        description="Entries the workers' group has not been delivered yet; null when Redis "
        "cannot tell (after deletions)."
    )
    pending: int = Field(description="Entries delivered and not acknowledged yet.")
    oldest_pending_s: float = Field(description="Age of the oldest pending entry; 0 when none.")
    dead_letters: int


class Overview(BaseModel):
    tenant: str | None = Field(description="Whose jobs are counted; null: every tenant's.")
    at: datetime = Field(description="When it was read.")
    window_s: int
    bucket_s: int
    queued: int = Field(description="Jobs queued now (projected).")
    started: int = Field(description="Jobs running now (projected).")
    ended: OutcomeCounts = Field(description="Jobs that ended in the window.")
    latency_ms: Latency
    buckets: list[BucketStats] = Field(description="The window's buckets, oldest first.")
    models: list[ModelStats] = Field(description="Per model version, by name.")
    partitions: list[PartitionStats] | None = Field(
        description="The log's shape per partition; null for a tenant's key (the streams are "
        "every tenant's)."
    )


async def read(svc: Services, principal: Principal, minutes: int) -> Overview:
    now = datetime.now(UTC)
    bucket_s = max(1, minutes * 60 // BUCKETS)
    # Whole buckets: the first starts at a multiple of bucket_s, as the query's do.
    first = (int(now.timestamp()) // bucket_s - BUCKETS + 1) * bucket_s
    since = datetime.fromtimestamp(first, UTC)
    tenant = None if principal.admin else principal.tenant
    ended = stats.fold(
        await svc.projection.rows(*stats.ended_query(tenant, since, bucket_s)), bucket_s
    )
    unfinished = {
        row["status"]: int(row["jobs"])
        for row in await svc.projection.rows(*stats.unfinished_query(tenant))
    }
    buckets = [
        _bucket(start, ended.buckets.get(start, Tally()))
        for start in range(first, first + BUCKETS * bucket_s, bucket_s)
    ]
    return Overview(
        tenant=tenant,
        at=now,
        window_s=BUCKETS * bucket_s,
        bucket_s=bucket_s,
        queued=unfinished.get("queued", 0),
        started=unfinished.get("started", 0),
        ended=OutcomeCounts(**ended.overall.counts),
        latency_ms=Latency(**ended.overall.ms),
        buckets=buckets,
        models=[
            ModelStats(
                model_version=version,
                ended=OutcomeCounts(**tally.counts),
                latency_ms=Latency(**tally.ms),
            )
            for version, tally in sorted(ended.models.items())
        ],
        partitions=await _partitions(svc) if principal.admin else None,
    )


def _bucket(start: int, tally: Tally) -> BucketStats:
    return BucketStats(
        start=datetime.fromtimestamp(start, UTC),
        ended=OutcomeCounts(**tally.counts),
        latency_ms=Latency(**tally.ms),
    )


async def _partitions(svc: Services) -> list[PartitionStats]:
    names = svc.settings.names

    async def every() -> list[Samples]:
        return [await sample_async(svc.redis, names, p) for p in range(svc.settings.partitions)]

    samples = await guarded_again("redis", svc.timeout_s, every)
    return [_partition(p, sample) for p, sample in enumerate(samples)]


def _partition(partition: int, sample: Samples) -> PartitionStats:
    def of(name: str) -> list[float]:
        return [value for (metric, _kind), value in sample.items() if metric == name]

    lags = of("inferflow_group_lag")
    kinds_with_group = of("inferflow_group_pending")
    return PartitionStats(
        partition=partition,
        stream_length=int(sum(of("inferflow_stream_length"))),
        # A kind whose lag Redis cannot tell has no lag sample: then neither has the partition.
        lag=int(sum(lags)) if len(lags) == len(kinds_with_group) else None,
        pending=int(sum(kinds_with_group)),
        oldest_pending_s=max(of("inferflow_group_oldest_pending_age_seconds"), default=0.0),
        dead_letters=int(sum(of("inferflow_dead_letters"))),
    )
