"""GET /v1/jobs/{job_id}/events: every event of a job, in log order."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from api.deps import Reader, ServicesDep
from api.longpoll import read_job, visible
from api.params import JobId
from api.responses import READ_JOB
from api.schemas import EventBody, TimelineBody
from domain.ids import is_job_id
from eventlog.lanes import DEFAULT_LANE
from readmodel import timeline

router = APIRouter()


@router.get(
    "/v1/jobs/{job_id}/events",
    response_model=TimelineBody,
    summary="Read a job's events",
    description="Every event of the job in log order, from the archive and, for events the "
    "projector has not reached yet, the stream.",
    response_description="The job's timeline.",
    responses=READ_JOB,
)
async def get_job_events(job_id: JobId, svc: ServicesDep, principal: Reader) -> TimelineBody:
    if not is_job_id(job_id):
        raise HTTPException(404, f"no job {job_id}")
    job = await read_job(svc, job_id)
    # The job names its tenant; another tenant's is as unknown as no job.
    if not principal.admin and visible(principal, job) is None:
        raise HTTPException(404, f"no job {job_id}")
    # Its events are all in its lane (a job known to neither the projection nor the log, which
    # only an admin gets this far with: the default lane's, as before lanes).
    lane = timeline.lane_of(job.lane, job.tenant) if job is not None else DEFAULT_LANE
    checkpoint, archived = await svc.projection.archived(job_id, lane)
    streamed = await svc.log.streamed(job_id, checkpoint, lane)
    events = timeline.timeline(timeline.merge(archived, streamed), job_id)
    if not events:
        raise HTTPException(404, f"no job {job_id}")
    bodies = [EventBody.model_validate(event, from_attributes=True) for event in events]
    return TimelineBody(job_id=job_id, events=bodies)
