"""Stopping work: POST /v1/jobs/{job_id}/cancel and POST /v1/batches/{batch_id}/cancel."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from api import cancelling
from api.batches import BatchBody
from api.deps import Canceller, ServicesDep
from api.params import BatchId, JobId
from api.responses import CANCEL_BATCH, CANCEL_JOB
from api.schemas import JobBody
from domain.ids import is_job_id

router = APIRouter()


@router.post(
    "/v1/jobs/{job_id}/cancel",
    response_model=JobBody,
    summary="Cancel a job",
    description="Ends a queued or started job as `cancelled` (`cancel_reason` `requested`): a "
    "queued job never runs, a running one's outcome is dropped. The cancel and the job's "
    "outcome race, and exactly one of them is the job's end: when the outcome came first, the "
    "answer is 409 and says so. Cancelling a cancelled job answers it again (200), so a cancel "
    "is safe to send twice. Another tenant's job is 404, exactly like an id that does not exist.",
    response_description="The job, cancelled.",
    responses=CANCEL_JOB,
)
async def cancel_job(
    job_id: JobId, request: Request, svc: ServicesDep, principal: Canceller
) -> JobBody:
    if not is_job_id(job_id):
        raise HTTPException(404, f"no job {job_id}")
    state = await cancelling.cancel_job(svc, principal, job_id, request.receive)
    if state is None:
        raise HTTPException(404, f"no job {job_id}")
    return JobBody.of(state)


@router.post(
    "/v1/batches/{batch_id}/cancel",
    response_model=BatchBody,
    summary="Cancel a batch",
    description="Cancels every unfinished job of the batch (`cancel_reason` `batch_cancelled`): "
    "its jobs that are queued never run, and its running ones' outcomes are dropped, including "
    "jobs not yet visible in GET /v1/batches/{batch_id}. Jobs that ended keep their outcome. "
    "The answer is the batch, `cancelling` until its last job has ended, then `cancelled`. "
    "Cancelling again is harmless; a batch whose jobs had all ended (`completed`) is 409. "
    "Another tenant's batch is 404, exactly like an id that does not exist.",
    response_description="The batch, being cancelled.",
    responses=CANCEL_BATCH,
)
async def cancel_batch(batch_id: BatchId, svc: ServicesDep, principal: Canceller) -> BatchBody:
    body = await cancelling.cancel_batch(svc, principal, batch_id)
    if body is None:
        raise HTTPException(404, f"no batch {batch_id}")
    return body
