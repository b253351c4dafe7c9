"""Turning a load run and the event log into the numbers docs/benchmarks.md reports."""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis

from domain.events import JobRequested, JobRetrying, decode, is_terminal
from infra.eventlog import range_entries
from infra.names import Names


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def ms(values: Sequence[float]) -> str:
    return " / ".join(f"{percentile(values, q) * 1000:.1f}" for q in (50, 95, 99))


@dataclass(frozen=True)
class Outcomes:
    latency_s: list[float]
    retry_rate: float
    lost: int


def log_outcomes(client: redis.Redis, names: Names, job_ids: Iterable[str]) -> Outcomes:
    """Server-side view of the jobs: terminal latency from the events, retries, lost jobs."""
    wanted = set(job_ids)
    requested: dict[str, float] = {}
    latency: list[float] = []
    retried: set[str] = set()
    done: set[str] = set()
    for _, fields in range_entries(client.xrange(names.events)):
        event = decode(fields)
        if event.job_id not in wanted:
            continue
        at = event.occurred_at.timestamp()
        if isinstance(event, JobRequested):
            requested[event.job_id] = at
        elif isinstance(event, JobRetrying):
            retried.add(event.job_id)
        elif is_terminal(event) and event.job_id in requested:
            done.add(event.job_id)
            latency.append(at - requested[event.job_id])
    return Outcomes(latency, len(retried) / max(len(wanted), 1), len(wanted - done))


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")
