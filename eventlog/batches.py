"""A batch's record in Redis (`Names.batch`): its tenant, when it was created and how many jobs
it was given, written as each part of it is accepted.

The projection knows a batch only once the projector has its jobs; the record knows it from
the moment its first jobs are on the log, so a batch read or cancelled right after its 202 is
found, with its tenant. It counts the jobs accepted (created, not replayed) and lives as long as
their job index: past that, the projection alone knows the batch.

The count is added after the jobs are on the log, never before: a count above the jobs the
batch really has would leave it unfinished for ever, one below is made good by the projection
(readers take the larger of the two).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventlog.connection import AsyncClient, Client
from eventlog.names import Names

TENANT = "tenant"
CREATED_AT = "created_at"
JOBS = "jobs"
WEBHOOK = "webhook"
# The batch webhook's triggers (domain.webhooks.format_filter); absent: completed only.
WEBHOOK_FILTER = "webhook_events_filter"


@dataclass(frozen=True, slots=True)
class BatchRecord:
    tenant: str
    created_at: datetime
    jobs: int
    # Where the batch is sent once it completes; "" for nowhere.
    webhook: str = ""
    webhook_filter: str = ""


async def add_jobs(
    client: AsyncClient,
    names: Names,
    batch_id: str,
    tenant: str,
    created_at: datetime,
    jobs: int,
    ttl_s: int,
) -> None:
    """Count `jobs` more jobs of `tenant`'s batch, created at `created_at` if this is its first
    part; the record lives `ttl_s` from now."""
    key = names.batch(batch_id)
    # One key, so one slot: a transaction on a cluster too. The tenant and the creation time
    # are the first part's; later parts only count.
    pipe = client.pipeline(transaction=True)
    pipe.hsetnx(key, TENANT, tenant)
    pipe.hsetnx(key, CREATED_AT, created_at.isoformat())
    pipe.hincrby(key, JOBS, jobs)
    pipe.expire(key, ttl_s)
    await pipe.execute()


async def watch(
    client: AsyncClient,
    names: Names,
    batch_id: str,
    tenant: str,
    url: str,
    ttl_s: int,
    triggers: str = "",
) -> None:
    """Name the batch's webhook (and its `triggers`, as format_filter writes them) in its
    record, then have the notifiers watch the batch until it completes
    (`Names.webhook_batches`), looked at first at once."""
    key = names.batch(batch_id)
    pipe = client.pipeline(transaction=True)
    pipe.hsetnx(key, TENANT, tenant)
    pipe.hset(key, mapping={WEBHOOK: url, WEBHOOK_FILTER: triggers})
    pipe.expire(key, ttl_s, nx=True)  # the count's, when it has one
    await pipe.execute()
    await client.zadd(names.webhook_batches, {batch_id: 0})


def parse(fields: dict[Any, Any]) -> BatchRecord | None:
    """The record of HGETALL's reply, None when there is none (or one half written by a
    release that wrote other fields)."""
    text = {_text(k): _text(v) for k, v in fields.items()}
    if TENANT not in text or CREATED_AT not in text:
        return None
    return BatchRecord(
        tenant=text[TENANT],
        created_at=datetime.fromisoformat(text[CREATED_AT]),
        jobs=int(text.get(JOBS, "0")),
        webhook=text.get(WEBHOOK, ""),
        webhook_filter=text.get(WEBHOOK_FILTER, ""),
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def read(client: AsyncClient, names: Names, batch_id: str) -> BatchRecord | None:
    """The batch's record, None when it has none (never accepted a job, or expired)."""
    return parse(await client.hgetall(names.batch(batch_id)))


def read_blocking(client: Client, names: Names, batch_id: str) -> BatchRecord | None:
    """`read` from a blocking client (tests, operator commands)."""
    return parse(client.hgetall(names.batch(batch_id)))


async def cancel_requested(client: AsyncClient, names: Names, batch_id: str) -> bool:
    """Whether the batch's cancel has been asked for: its mark, which the cancel sets in every
    partition before it cancels a job, is in partition 0 (every log has one)."""
    return bool(await client.exists(names.batch_cancelled(0, batch_id)))
