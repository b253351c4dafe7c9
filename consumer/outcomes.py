"""The outcomes a consumer writes about a job. Writing them is the consumer group's
(eventlog.group): every terminal event goes through its FINISH script, which appends it and
acknowledges the request only while the entry is still this consumer's and the job's run has not
ended; its JobStarted is the START script's (eventlog.runs)."""

from __future__ import annotations

from datetime import datetime

from classifier.registry import Prediction
from domain.errors import InferFlowError
from domain.events import JobFailed, JobRequested, JobSucceeded


def succeeded(
    request: JobRequested,
    consumer: str,
    at: datetime,
    attempt: int,
    prediction: Prediction,
    inference_ms: float,
) -> JobSucceeded:
    return JobSucceeded(
        job_id=request.job_id,
        occurred_at=at,
        consumer=consumer,
        attempt=attempt,
        label=prediction.label,
        score=prediction.score,
        probabilities=prediction.probabilities,
        model_version=request.model_version,
        inference_ms=round(inference_ms, 3),
    )


def failed(
    job_id: str,
    consumer: str,
    at: datetime,
    attempt: int,
    exc: InferFlowError,
    reason: str | None = None,
) -> JobFailed:
    return JobFailed(
        job_id=job_id,
        occurred_at=at,
        consumer=consumer,
        attempt=attempt,
        error_type=type(exc).__name__,
        error=str(exc) if reason is None else reason,
        transient=exc.transient,
    )
