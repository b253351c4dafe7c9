"""GET /v1/jobs/{job_id}: a job as the projection (or, before it, the log) shows it, at once or
once it is terminal (`?wait=`)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from api.deps import Reader, ServicesDep
from api.longpoll import job_within
from api.params import JobId, Wait
from api.responses import READ_JOB
from api.schemas import JobBody
from domain.ids import is_job_id

router = APIRouter()


@router.get(
    "/v1/jobs/{job_id}",
    response_model=JobBody,
    summary="Read a job",
    description="The job as the projection shows it; a job the projector has not reached yet "
    "is read from its JobRequested event (status `queued`), so a read right after a 202 never "
    "gives 404. Another tenant's job is 404, exactly like an id that does not exist. With "
    "`wait`, a long-poll: the answer waits until the job is terminal (woken by "
    "the projector, not by polling) or the time runs out, and is 200 either way.",
    response_description="The job.",
    responses=READ_JOB,
)
async def get_job(
    job_id: JobId, request: Request, svc: ServicesDep, principal: Reader, wait: Wait = 0
) -> JobBody:
    # Checked first so that arbitrary strings never reach PostgreSQL's uuid column.
    if not is_job_id(job_id):
        raise HTTPException(404, f"no job {job_id}")
    wait_s = min(wait, svc.settings.max_wait_s)
    state = await job_within(svc, principal, job_id, wait_s, request.receive)
    if state is None:
        raise HTTPException(404, f"no job {job_id}")
    return JobBody.of(state)
