"""The SQL of the overview (GET /v1/stats and the console): the jobs that ended in the last
minutes, counted by outcome per time bucket and per model, with the percentiles of their time
from submission to the end; and the unfinished jobs counted by status.

One query answers the ended jobs at every level (GROUPING SETS); the level of a row is its
GROUPING() bitmask. It reads the index on finished_at (migration 0008), so its cost is that of
the window's jobs, not the table's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.job import JobStatus

TERMINAL = tuple(status.value for status in JobStatus if status.is_terminal)
UNFINISHED = tuple(status.value for status in JobStatus if not status.is_terminal)
QUANTILES = (0.5, 0.95, 0.99)

# GROUPING(bucket, status, model_version): a bit set for each column the row does not group by.
BY_BUCKET_AND_STATUS = 0b001
BY_BUCKET = 0b011
BY_MODEL_AND_STATUS = 0b100
BY_MODEL = 0b110
BY_STATUS = 0b101
ALL = 0b111

_ENDED = (
    "WITH ended AS ("
    " SELECT floor(extract(epoch FROM finished_at) / %s)::bigint AS bucket, status,"
    " model_version, extract(epoch FROM finished_at - created_at) * 1000 AS ms"
    " FROM jobs WHERE finished_at >= %s AND status = ANY(%s){tenant})"
    " SELECT GROUPING(bucket, status, model_version) AS level, bucket, status, model_version,"
    " count(*) AS jobs, percentile_cont(%s::float8[]) WITHIN GROUP (ORDER BY ms) AS ms"
    " FROM ended GROUP BY GROUPING SETS ((bucket, status), (bucket), (model_version, status),"
    " (model_version), (status), ())"
)


def ended_query(tenant: str | None, since: datetime, bucket_s: int) -> tuple[str, list[Any]]:
    """The jobs that ended at or after `since`, of `tenant` (of every tenant: None), at every
    level; `bucket_s`: the width of a time bucket. A row's `bucket` is its start in Unix seconds
    divided by `bucket_s`."""
    params: list[Any] = [bucket_s, since, list(TERMINAL)]
    if tenant is not None:
        params.append(tenant)
    sql = _ENDED.format(tenant=" AND tenant = %s" if tenant is not None else "")
    return sql, [*params, list(QUANTILES)]


def unfinished_query(tenant: str | None) -> tuple[str, list[Any]]:
    """The unfinished jobs counted by status, of `tenant` (of every tenant: None)."""
    where = "status = ANY(%s)"
    params: list[Any] = [list(UNFINISHED)]
    if tenant is not None:
        where, params = f"tenant = %s AND {where}", [tenant, *params]
    return f"SELECT status, count(*) AS jobs FROM jobs WHERE {where} GROUP BY status", params


@dataclass
class Tally:
    """Jobs ended by outcome, and the percentiles of their time to the end (ms; None: none)."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TERMINAL, 0))
    ms: dict[str, float | None] = field(default_factory=lambda: _no_quantiles())

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class Ended:
    """The ended jobs of a window: overall, per bucket (by its start, Unix seconds) and per
    model."""

    overall: Tally = field(default_factory=Tally)
    buckets: dict[int, Tally] = field(default_factory=dict)
    models: dict[str, Tally] = field(default_factory=dict)


def _no_quantiles() -> dict[str, float | None]:
    return {_name(q): None for q in QUANTILES}


def _name(quantile: float) -> str:
    return f"p{round(quantile * 100)}"


def fold(rows: list[dict[str, Any]], bucket_s: int) -> Ended:
    """The rows of `ended_query` as their tallies."""
    ended = Ended()
    for row in rows:
        level = row["level"]
        if level in (BY_BUCKET_AND_STATUS, BY_BUCKET):
            tally = ended.buckets.setdefault(int(row["bucket"]) * bucket_s, Tally())
        elif level in (BY_MODEL_AND_STATUS, BY_MODEL):
            tally = ended.models.setdefault(row["model_version"], Tally())
        elif level in (BY_STATUS, ALL):
            tally = ended.overall
        else:
            continue
        if level in (BY_BUCKET_AND_STATUS, BY_MODEL_AND_STATUS, BY_STATUS):
            tally.counts[row["status"]] = int(row["jobs"])
        else:
            values = row["ms"] or [None] * len(QUANTILES)
            tally.ms = {_name(q): v for q, v in zip(QUANTILES, values, strict=True)}
    return ended
