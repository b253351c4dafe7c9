"""GET /v1/jobs/{job_id}: a job as the projection (or, before it, the log) shows it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException

from api.deps import Services, services
from api.schemas import JobBody, JobResultBody
from domain.ids import is_job_id
from domain.job import JobState

router = APIRouter()


def to_body(state: JobState) -> JobBody:
    result = state.result
    return JobBody(
        job_id=state.job_id,
        status=state.status.value,
        model_version=state.model_version,
        result=JobResultBody(
            label=result.label,
            score=result.score,
            model_version=result.model_version,
            probabilities=result.probabilities,
        )
        if result
        else None,
        error=state.error,
        error_type=state.error_type,
        retry_count=state.retry_count,
        attempts=state.attempts,
        created_at=state.created_at,
        started_at=state.started_at,
        finished_at=state.finished_at,
        updated_at=state.updated_at,
    )


@router.get("/v1/jobs/{job_id}", response_model=JobBody)
async def get_job(job_id: str, svc: Annotated[Services, Depends(services)]) -> JobBody:
    if not is_job_id(job_id):
        raise HTTPException(404, f"no job {job_id}")
    state = await svc.projection.job(job_id) or await svc.log.accepted_job(job_id)
    if state is None:
        raise HTTPException(404, f"no job {job_id}")
    return to_body(state)
