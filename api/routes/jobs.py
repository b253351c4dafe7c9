"""GET /v1/jobs/{job_id}: a job as the projection (or, before it, the log) shows it, at once or
once it is terminal (`?wait=`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request

from api.deps import Services, services
from api.longpoll import WAIT_LIMIT_S, job_within
from api.openapi import RETRY_AFTER, SERVER_ERROR, example, problem_response
from api.schemas import EXAMPLE_JOB_ID, JobBody, JobResultBody, UnprocessableProblem
from domain.ids import is_job_id
from domain.job import JobState

router = APIRouter()

JOB_ID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

RESPONSES: dict[int | str, dict[str, Any]] = {
    404: problem_response(
        "No job with this id was ever accepted (or the id is not in the UUID format).",
        example(404, "http-404", "Not Found", f"no job {EXAMPLE_JOB_ID}"),
    ),
    422: problem_response(
        f"`wait` is not a number from 0 to {WAIT_LIMIT_S}.",
        example(
            422,
            "validation-error",
            "Invalid request",
            "query.wait: Input should be less than or equal to 60",
            errors=[
                {
                    "field": "query.wait",
                    "message": "Input should be less than or equal to 60",
                    "type": "less_than_equal",
                }
            ],
        ),
        model=UnprocessableProblem,
    ),
    503: problem_response(
        "PostgreSQL or Redis did not answer. Retry after Retry-After seconds.",
        example(
            503,
            "dependency-unavailable",
            "Service unavailable",
            "postgres unavailable: no answer within 2.0 s",
        ),
        headers=RETRY_AFTER,
    ),
    **SERVER_ERROR,
}

JobId = Annotated[
    str,
    Path(
        description="A job id as the 202 returned it: a UUID in canonical lowercase form. "
        "Any other string is 404 without a database read.",
        examples=[EXAMPLE_JOB_ID],
        json_schema_extra={"pattern": JOB_ID_PATTERN},
    ),
]

Wait = Annotated[
    float,
    Query(
        ge=0,
        le=WAIT_LIMIT_S,
        description=f"Seconds (0 to {WAIT_LIMIT_S}) to hold the request until the job is "
        "succeeded or failed. The answer comes as soon as it is, or when the time runs out with "
        "the job as it then is. The server may wait less (MAX_WAIT_S); 0, the default, answers "
        "at once.",
    ),
]


def to_body(state: JobState) -> JobBody:
    result = state.result
    return JobBody(
        job_id=state.job_id,
        status=state.status,
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


@router.get(
    "/v1/jobs/{job_id}",
    response_model=JobBody,
    summary="Read a job",
    description="The job as the projection shows it; a job the projector has not reached yet "
    "is read from its JobRequested event (status `queued`), so a read right after a 202 never "
    "gives 404. With `wait`, a long-poll: the answer waits until the job is terminal (woken by "
    "the projector, not by polling) or the time runs out, and is 200 either way.",
    response_description="The job.",
    responses=RESPONSES,
)
async def get_job(
    job_id: JobId,
    request: Request,
    svc: Annotated[Services, Depends(services)],
    wait: Wait = 0,
) -> JobBody:
    # Checked first so that arbitrary strings never reach PostgreSQL's uuid column.
    if not is_job_id(job_id):
        raise HTTPException(404, f"no job {job_id}")
    wait_s = min(wait, svc.settings.max_wait_s)
    state = await job_within(svc, job_id, wait_s, request.receive)
    if state is None:
        raise HTTPException(404, f"no job {job_id}")
    return to_body(state)
