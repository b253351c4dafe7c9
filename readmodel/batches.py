"""The SQL of a batch's reads (GET /v1/batches/{batch_id} and its results): its jobs' counts by
status, and its terminal jobs a chunk at a time.

Both read the partial index of migration 0006 on (tenant, batch_id, created_at, job_id), which
holds the jobs of batches only: a batch's rows are one range of it. Results come in keyset
chunks in (created_at, job_id) order, each starting after the last row of the one before, so a
chunk costs the same however far into the batch it is, and a job that ends while the results
are read is listed at most once.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.cancellation import CancelReason
from domain.job import JobStatus
from eventlog.batches import BatchRecord
from readmodel.listing import Position

TERMINAL = tuple(status.value for status in JobStatus if status.is_terminal)
UNFINISHED = tuple(status.value for status in JobStatus if not status.is_terminal)

SUMMARY = (
    "SELECT status, count(*) AS jobs,"
    " count(*) FILTER (WHERE cancel_reason = %s) AS batch_cancelled,"
    " min(created_at) AS created_at, max(finished_at) AS finished_at"
    " FROM jobs WHERE tenant = %s AND batch_id = %s GROUP BY status"
)

RESULT_COLUMNS = (
    "job_id, custom_id, status, result_label, result_score, result_probabilities,"
    " result_model_version, error_type, error, cancel_reason, created_at, finished_at"
)


@dataclass(frozen=True)
class Projected:
    """What the projection holds of a batch: its jobs by status, how many its cancel ended,
    its first job's creation and its last job's end (of those projected)."""

    counts: dict[JobStatus, int] = field(default_factory=lambda: dict.fromkeys(JobStatus, 0))
    batch_cancelled: int = 0
    created_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class Summary:
    """A batch as its record and its projected jobs show it: what GET /v1/batches/{id} says
    (api.batches) and a batch's webhook sends (notifier.batches)."""

    status: str
    # "total" and every status's count.
    counts: dict[str, int]
    created_at: datetime
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "cancelled")


def summarize(
    record: BatchRecord | None, projected: Projected, cancel_requested: bool
) -> Summary | None:
    """The batch's summary; None when neither its record nor the projection knows it."""
    if record is None and not projected.total:
        return None
    total = max(record.jobs if record else 0, projected.total)
    counts = {status.value: n for status, n in projected.counts.items()}
    counts[JobStatus.QUEUED.value] += total - projected.total  # accepted, not projected yet
    terminal = sum(projected.counts[s] for s in JobStatus if s.is_terminal)
    finished = terminal == total
    cancelled = cancel_requested or projected.batch_cancelled > 0
    if finished:
        status = "cancelled" if cancelled else "completed"
    else:
        status = "cancelling" if cancelled else "in_progress"
    created_at = record.created_at if record else projected.created_at
    assert created_at is not None  # a projected job always has one
    return Summary(
        status=status,
        counts={"total": total, **counts},
        created_at=created_at,
        finished_at=projected.finished_at if finished else None,
    )


def summary_query(tenant: str, batch_id: str) -> tuple[str, list[Any]]:
    """The SQL and parameters (psycopg placeholders) of `tenant`'s batch's counts by status."""
    return SUMMARY, [CancelReason.BATCH_CANCELLED.value, tenant, batch_id]


def projected(rows: Sequence[dict[str, Any]]) -> Projected:
    """The summary query's rows, folded."""
    counts = dict.fromkeys(JobStatus, 0)
    for row in rows:
        counts[JobStatus(row["status"])] = row["jobs"]
    created = [row["created_at"] for row in rows if row["created_at"] is not None]
    finished = [row["finished_at"] for row in rows if row["finished_at"] is not None]
    return Projected(
        counts=counts,
        batch_cancelled=sum(row["batch_cancelled"] for row in rows),
        created_at=min(created, default=None),
        finished_at=max(finished, default=None),
    )


def results_query(
    tenant: str, batch_id: str, after: Position | None, rows: int
) -> tuple[str, list[Any]]:
    """The SQL and parameters of the first `rows` terminal jobs of `tenant`'s batch after
    `after` (from the start without it), in (created_at, job_id) order."""
    return _chunk_query(RESULT_COLUMNS, tenant, batch_id, TERMINAL, after, rows)


def unfinished_query(
    tenant: str, batch_id: str, after: Position | None, rows: int
) -> tuple[str, list[Any]]:
    """The same for the batch's jobs the projection shows unfinished (queued or started), for
    its cancel: their job_id, lane, created_at."""
    return _chunk_query("job_id, lane, created_at", tenant, batch_id, UNFINISHED, after, rows)


def _chunk_query(
    columns: str,
    tenant: str,
    batch_id: str,
    statuses: Sequence[str],
    after: Position | None,
    rows: int,
) -> tuple[str, list[Any]]:
    # Keyset chunks on the partial index (tenant, batch_id, created_at, job_id) of migration
    # 0006: each starts after the last row of the one before, so a chunk costs the same however
    # far into the batch it is, and none holds the whole batch in memory.
    conditions = ["tenant = %s", "batch_id = %s", "status = ANY(%s)"]
    params: list[Any] = [tenant, batch_id, list(statuses)]
    if after is not None:
        # A row value: one index bound, not a filter on every row read.
        conditions.append("(created_at, job_id) > (%s, %s)")
        params += [after.created_at, uuid.UUID(after.job_id)]
    sql = (
        f"SELECT {columns} FROM jobs WHERE {' AND '.join(conditions)}"
        " ORDER BY created_at, job_id LIMIT %s"
    )
    return sql, [*params, rows]


# The tenants with batches, each found by one probe of the batch index (a loose index scan:
# a handful of probes for a handful of tenants, where DISTINCT would read every batch's rows),
# and the first of them with the batch.
TENANT_OF_BATCH = """
WITH RECURSIVE tenants AS (
    (SELECT tenant FROM jobs WHERE batch_id IS NOT NULL ORDER BY tenant LIMIT 1)
    UNION ALL
    SELECT (SELECT j.tenant FROM jobs j
             WHERE j.batch_id IS NOT NULL AND j.tenant > tenants.tenant
             ORDER BY j.tenant LIMIT 1)
      FROM tenants WHERE tenants.tenant IS NOT NULL
)
SELECT tenant FROM tenants
 WHERE tenant IS NOT NULL
   AND EXISTS (SELECT 1 FROM jobs j WHERE j.tenant = tenants.tenant AND j.batch_id = %s)
 LIMIT 1
"""


def tenant_query(batch_id: str) -> tuple[str, list[Any]]:
    """The SQL and parameters of the tenant whose batch `batch_id` is (no row: none's), for a
    reader who may see every tenant's (an admin)."""
    return TENANT_OF_BATCH, [batch_id]


# A tenant's batches, newest first, with their jobs counted: read from the batch index (the
# tenant's batches' rows are one range of it), newest first by their first job.
LISTED = (
    "SELECT batch_id, count(*) AS jobs,"
    " count(*) FILTER (WHERE status = ANY(%s)) AS ended,"
    " min(created_at) AS created_at, max(finished_at) AS finished_at"
    " FROM jobs WHERE tenant = %s AND batch_id IS NOT NULL"
    " GROUP BY batch_id ORDER BY min(created_at) DESC, batch_id DESC LIMIT %s"
)


def listing_query(tenant: str, rows: int) -> tuple[str, list[Any]]:
    """The SQL and parameters of `tenant`'s latest `rows` batches (of the projected jobs):
    batch_id, jobs, ended (terminal jobs), created_at, finished_at (of its last ended job)."""
    return LISTED, [list(TERMINAL), tenant, rows]
