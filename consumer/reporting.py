"""What a consumer says about the jobs it finishes: counters and log lines.

Log levels are chosen for thousands of jobs a second: a JSON line costs about 16 us, more than
predicting a text in a batch. So a job that succeeded is logged at DEBUG (`job finished`, with
its job and trace ids), one that failed or was cancelled at INFO, one whose entry another
consumer had claimed (superseded) at WARNING, and every batch that held jobs gets one INFO
summary.
"""

from __future__ import annotations

import logging
from collections import Counter

from consumer import metrics
from domain.events import Event, JobFailed, JobRequested, JobSucceeded
from eventlog.runs import Decision, Verdict
from runtime.tracing import trace_id

log = logging.getLogger(__name__)

SUCCEEDED, FAILED, SUPERSEDED, CANCELLED = "succeeded", "failed", "superseded", "cancelled"


def outcome_name(outcome: Event, decision: Decision) -> str:
    """succeeded, failed, cancelled (the job was cancelled before its outcome, which was
    dropped) or superseded (another consumer had claimed the entry)."""
    if decision.verdict is Verdict.WRITTEN:
        return SUCCEEDED if isinstance(outcome, JobSucceeded) else FAILED
    return CANCELLED if decision.cancel_reason else SUPERSEDED


def unstarted_name(decision: Decision) -> str:
    """What became of a job that START did not begin: cancelled, or superseded (it had ended
    otherwise)."""
    return CANCELLED if decision.cancel_reason else SUPERSEDED


def cancelled(consumer: str, job_id: str, traceparent: str, decision: Decision) -> None:
    """Count and log a job that this consumer found cancelled, or cancelled itself (its
    deadline passed, its batch was cancelled)."""
    reason = decision.cancel_reason
    if reason is None:
        return
    ours = decision.verdict is Verdict.CANCELLED
    if ours:
        metrics.CANCELS.labels(reason).inc()
    if log.isEnabledFor(logging.INFO):
        extra = {
            **job_fields(consumer, job_id, traceparent),
            "event": "JobCancelled",
            "reason": reason,
        }
        log.info("job cancelled" if ours else "job was cancelled; nothing written", extra=extra)


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
    if name == CANCELLED:
        return  # said by `cancelled`
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
            CANCELLED: tally[CANCELLED],
            "duration_ms": round(duration_ms, 3),
        },
    )
