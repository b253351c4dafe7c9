"""What a consumer says about the jobs it finishes: counters and log lines.

Log levels are chosen for thousands of jobs a second: a JSON line costs about 16 us, more than
predicting a text in a batch. So a job that succeeded is logged at DEBUG (`job finished`, with
its job and trace ids), one that failed at INFO, one whose entry another consumer had claimed
(superseded) at WARNING, and every batch that held jobs gets one INFO summary.
"""

from __future__ import annotations

import logging
from collections import Counter

from consumer import metrics
from domain.events import Event, JobFailed, JobRequested, JobSucceeded
from runtime.tracing import trace_id

log = logging.getLogger(__name__)

SUCCEEDED, FAILED, SUPERSEDED = "succeeded", "failed", "superseded"


def outcome_name(outcome: Event, finished: bool) -> str:
    """succeeded, failed or superseded (another consumer had claimed the entry)."""
    if not finished:
        return SUPERSEDED
    return SUCCEEDED if isinstance(outcome, JobSucceeded) else FAILED


def job_fields(consumer: str, job_id: str, traceparent: str) -> dict[str, object]:
    """The structured log fields naming a job and this consumer."""
    fields: dict[str, object] = {"job_id": job_id, "consumer": consumer}
    if trace := trace_id(traceparent):
        fields["trace_id"] = trace
    return fields


def job(
    consumer: str, request: JobRequested, outcome: Event, name: str, duration_ms: float
) -> None:
    """Log one job's outcome at the level its kind deserves (counted by the caller)."""
    level = logging.DEBUG if name == SUCCEEDED else logging.INFO
    if name == SUPERSEDED:
        level = logging.WARNING
    if not log.isEnabledFor(level):
        return
    extra = {
        **job_fields(consumer, request.job_id, request.traceparent),
        "event": type(outcome).__name__,
        "attempt": getattr(outcome, "attempt", 0),
        "duration_ms": round(duration_ms, 3),
    }
    if isinstance(outcome, JobFailed):
        extra["error"] = outcome.error
    if name == SUPERSEDED:
        log.warning("job claimed by another consumer; dropped our outcome", extra=extra)
    else:
        log.log(level, "job finished", extra=extra)


def count(tally: Counter[str]) -> None:
    for name, jobs in tally.items():
        metrics.JOBS.labels(name).inc(jobs)


def batch(
    consumer: str, entries: int, tally: Counter[str], duration_ms: float, lane: str = ""
) -> None:
    """One line per batch that held jobs; `lane` is the kind of its lane (interactive or bulk:
    never the tenant, so that the field stays one of two values)."""
    jobs = sum(tally.values())
    if not jobs:
        return
    log.info(
        "batch finished",
        extra={
            "consumer": consumer,
            **({"lane": lane} if lane else {}),
            "entries": entries,
            "jobs": jobs,
            SUCCEEDED: tally[SUCCEEDED],
            FAILED: tally[FAILED],
            SUPERSEDED: tally[SUPERSEDED],
            "duration_ms": round(duration_ms, 3),
        },
    )
