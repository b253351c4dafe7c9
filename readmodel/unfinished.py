"""The SQL of a batch's cancel: its jobs the projection shows unfinished (queued or started), a
chunk at a time.

It reads the partial index of migration 0006 on (tenant, batch_id, created_at, job_id), in
keyset chunks: each starts after the last row of the one before, so a chunk costs the same
however far into the batch it is, and none holds the whole batch in memory.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from domain.job import JobStatus

UNFINISHED = [status.value for status in JobStatus if not status.is_terminal]


def query(
    tenant: str, batch_id: str, after: tuple[datetime, str] | None, rows: int
) -> tuple[str, list[Any]]:
    """The SQL and parameters (psycopg placeholders) of the first `rows` unfinished jobs of
    `tenant`'s batch after `after` (created_at, job_id of the last row of the chunk before),
    in (created_at, job_id) order: their job_id, lane, created_at."""
    conditions = ["tenant = %s", "batch_id = %s", "status = ANY(%s)"]
    params: list[Any] = [tenant, batch_id, UNFINISHED]
    if after is not None:
        conditions.append("(created_at, job_id) > (%s, %s)")
        params += [after[0], uuid.UUID(after[1])]
    sql = (
        f"SELECT job_id, lane, created_at FROM jobs WHERE {' AND '.join(conditions)}"
        " ORDER BY created_at, job_id LIMIT %s"
    )
    return sql, [*params, rows]
