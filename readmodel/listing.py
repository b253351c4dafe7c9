"""The SQL of listing a tenant's jobs newest first, a page at a time (GET /v1/jobs).

Pages are keyset pages in the order (created_at DESC, job_id DESC): a page starts below the
last row of the one before, compared as a row value, so a page costs the same at any depth and
jobs created meanwhile (which sort above every page read so far) never shift later pages.

Each filter alone reads its index of migration 0006 (tenant, [filter column,] created_at,
job_id) backwards, in the page's order, and stops after the rows asked for: no sort, no count.
Several statuses are one such read per status, merged; filters on other columns as well are
checked on the rows the chosen index yields (the planner picks it), so a rare combination may
read further than its page.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.job import JobStatus

ORDER = "ORDER BY created_at DESC, job_id DESC"


@dataclass(frozen=True)
class Filters:
    """What a listing keeps: every filter given must hold (AND); `statuses`, any of them."""

    statuses: tuple[JobStatus, ...] = ()
    model_version: str | None = None
    label: str | None = None  # the result's label (jobs.result_label)
    batch_id: str | None = None
    created_after: datetime | None = None  # inclusive
    created_before: datetime | None = None  # exclusive


@dataclass(frozen=True)
class Position:
    """Where a page ends: its last row's sort key. The next page starts below it."""

    created_at: datetime
    job_id: str


def page_query(
    tenant: str, filters: Filters, after: Position | None, rows: int
) -> tuple[str, list[Any]]:
    """The SQL and parameters (psycopg placeholders) of the first `rows` rows of `tenant`'s
    jobs that pass `filters`, below `after` (from the top without it), newest first."""
    statuses = sorted(set(filters.statuses))
    if len(statuses) <= 1:
        return _branch(tenant, filters, statuses[0] if statuses else None, after, rows)
    # `status = ANY(...)` would read every matching row and sort them: each status's index
    # range is in page order on its own, so each gives its first rows and those are merged.
    parts, params = [], []
    for status in statuses:
        sql, values = _branch(tenant, filters, status, after, rows)
        parts.append(f"({sql})")
        params += values
    params.append(rows)
    return f"SELECT * FROM ({' UNION ALL '.join(parts)}) AS page {ORDER} LIMIT %s", params


def _branch(
    tenant: str, filters: Filters, status: JobStatus | None, after: Position | None, rows: int
) -> tuple[str, list[Any]]:
    conditions: list[str] = ["tenant = %s"]
    params: list[Any] = [tenant]

    def where(condition: str, value: Any) -> None:
        conditions.append(condition)
        params.append(value)

    if status is not None:
        where("status = %s", status.value)
    if filters.model_version is not None:
        where("model_version = %s", filters.model_version)
    if filters.label is not None:
        # Implies result_label IS NOT NULL: the planner may read the partial label index.
        where("result_label = %s", filters.label)
    if filters.batch_id is not None:
        where("batch_id = %s", filters.batch_id)
    if filters.created_after is not None:
        where("created_at >= %s", filters.created_after)
    if filters.created_before is not None:
        where("created_at < %s", filters.created_before)
    if after is not None:
        # A row value: one index bound on (created_at, job_id), where `created_at < x OR
        # (created_at = x AND job_id < y)` would be a filter on every row read.
        conditions.append("(created_at, job_id) < (%s, %s)")
        params += [after.created_at, uuid.UUID(after.job_id)]
    sql = f"SELECT * FROM jobs WHERE {' AND '.join(conditions)} {ORDER} LIMIT %s"
    return sql, [*params, rows]


def last_position(rows: Sequence[dict[str, Any]]) -> Position:
    """The position a page of `rows` ends at."""
    last = rows[-1]
    return Position(last["created_at"], str(last["job_id"]))
