"""The job state machine and the fold of events into job state.

queued -> started -> succeeded | failed | cancelled, and queued -> cancelled (a job cancelled
before it ran, domain.cancellation). Terminal states absorb every later event, so a second
terminal event (a message delivered twice) changes nothing. Events that arrive before the job's
`JobRequested` (a log read from the middle) still fold without error; status never moves back.
Webhook deliveries (domain.webhooks) are events of the job's lane but not steps of the job: they
leave its state as it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from domain.events import (
    Event,
    JobCancelled,
    JobFailed,
    JobRequested,
    JobRetrying,
    JobStarted,
    JobSucceeded,
)
from domain.lanes import INTERACTIVE
from domain.tenants import DEFAULT_TENANT
from domain.webhooks import WEBHOOK_EVENT_TYPES


class JobStatus(StrEnum):
    QUEUED = "queued"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset((JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED))
_RANK = {
    JobStatus.QUEUED: 0,
    JobStatus.STARTED: 1,
    JobStatus.SUCCEEDED: 2,
    JobStatus.FAILED: 2,
    JobStatus.CANCELLED: 2,
}


@dataclass(frozen=True, slots=True)
class JobResult:
    label: str
    score: float
    probabilities: dict[str, float]
    model_version: str


@dataclass(frozen=True, slots=True)
class JobState:
    """A job as the fold of its events sees it."""

    job_id: str
    status: JobStatus
    created_at: datetime
    updated_at: datetime
    model_version: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    retry_count: int = 0
    attempts: int = 0
    result: JobResult | None = None
    error_type: str | None = None
    error: str | None = None
    # The job's request names them; until the request is seen, the default tenant's and lane.
    tenant: str = DEFAULT_TENANT
    lane: str = INTERACTIVE
    batch_id: str | None = None
    custom_id: str | None = None
    deadline: datetime | None = None
    # domain.cancellation.CancelReason of a cancelled job.
    cancel_reason: str | None = None


def _advance(state: JobState, status: JobStatus) -> JobStatus:
    return status if _RANK[status] > _RANK[state.status] else state.status


def _on_requested(state: JobState | None, event: JobRequested) -> JobState:
    if state is None:
        return JobState(
            job_id=event.job_id,
            status=JobStatus.QUEUED,
            created_at=event.occurred_at,
            updated_at=event.occurred_at,
            model_version=event.model_version,
            tenant=event.tenant,
            lane=event.lane,
            batch_id=event.batch_id or None,
            custom_id=event.custom_id or None,
            deadline=event.deadline,
        )
    # A repeat, or the request seen after later events: fill in, never move status back.
    return replace(
        state,
        created_at=min(state.created_at, event.occurred_at),
        model_version=state.model_version or event.model_version,
        tenant=event.tenant,
        lane=event.lane,
        batch_id=event.batch_id or None,
        custom_id=event.custom_id or None,
        deadline=event.deadline,
    )


def _on_started(state: JobState, event: JobStarted, updated_at: datetime) -> JobState:
    return replace(
        state,
        status=_advance(state, JobStatus.STARTED),
        updated_at=updated_at,
        started_at=state.started_at or event.occurred_at,
        attempts=max(state.attempts, event.attempt),
    )


def _on_retrying(state: JobState, event: JobRetrying, updated_at: datetime) -> JobState:
    return replace(
        state,
        status=_advance(state, JobStatus.STARTED),
        updated_at=updated_at,
        retry_count=state.retry_count + 1,
        attempts=max(state.attempts, event.attempt),
        error_type=event.error_type,
        error=event.error,
    )


def _on_succeeded(state: JobState, event: JobSucceeded, updated_at: datetime) -> JobState:
    result = JobResult(event.label, event.score, dict(event.probabilities), event.model_version)
    return replace(
        state,
        status=JobStatus.SUCCEEDED,
        updated_at=updated_at,
        finished_at=event.occurred_at,
        attempts=max(state.attempts, event.attempt),
        result=result,
        error_type=None,
        error=None,
    )


def _on_failed(state: JobState, event: JobFailed, updated_at: datetime) -> JobState:
    return replace(
        state,
        status=JobStatus.FAILED,
        updated_at=updated_at,
        finished_at=event.occurred_at,
        attempts=max(state.attempts, event.attempt),
        error_type=event.error_type,
        error=event.error,
    )


def _on_cancelled(state: JobState, event: JobCancelled, updated_at: datetime) -> JobState:
    return replace(
        state,
        status=JobStatus.CANCELLED,
        updated_at=updated_at,
        finished_at=event.occurred_at,
        cancel_reason=event.reason,
    )


def _placeholder(event: Event) -> JobState:
    """State for a job whose first seen event is not its request."""
    return JobState(
        job_id=event.job_id,
        status=JobStatus.QUEUED,
        created_at=event.occurred_at,
        updated_at=event.occurred_at,
    )


def evolve(state: JobState | None, event: Event) -> JobState:
    """The job after `event`; the same state when the event changes nothing."""
    if state is not None and state.job_id != event.job_id:
        raise ValueError(f"event for job {event.job_id} applied to job {state.job_id}")
    if isinstance(event, JobRequested):
        return _on_requested(state, event)
    current = state or _placeholder(event)
    if is_delivery(event):
        # A delivery is no step of the job: it neither moves nor dates it.
        return current
    if current.status.is_terminal:
        return current
    # One `replace` per event, the updated_at with the rest: the projector evolves every
    # event of the log, and `replace` is most of the cost.
    updated_at = max(current.updated_at, event.occurred_at)
    if isinstance(event, JobStarted):
        return _on_started(current, event, updated_at)
    if isinstance(event, JobRetrying):
        return _on_retrying(current, event, updated_at)
    if isinstance(event, JobSucceeded):
        return _on_succeeded(current, event, updated_at)
    if isinstance(event, JobFailed):
        return _on_failed(current, event, updated_at)
    if isinstance(event, JobCancelled):
        return _on_cancelled(current, event, updated_at)
    return current


def fold(events: Iterable[Event], states: dict[str, JobState] | None = None) -> dict[str, JobState]:
    """Every job's state after `events`, starting from `states` (not modified)."""
    jobs = dict(states or {})
    for event in events:
        before = jobs.get(event.job_id)
        if before is None and is_delivery(event):
            continue  # a delivery makes no job (one whose row is gone stays gone)
        jobs[event.job_id] = evolve(before, event)
    return jobs


def is_delivery(event: Event) -> bool:
    """A webhook delivery's event: of the job's lane, no step of the job."""
    return isinstance(event, WEBHOOK_EVENT_TYPES)
