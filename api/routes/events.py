"""GET /v1/jobs/{job_id}/events: every event of a job, in log order."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from api.deps import Services, services
from api.routes.jobs import RESPONSES, JobId
from api.timeline import TimelineReader
from domain.ids import is_job_id

router = APIRouter()


class EventBody(BaseModel):
    entry_id: str = Field(description="Stream id of the event, e.g. `1795869653593-0`.")
    type: str = Field(description="`JobRequested`, `JobStarted`, `JobRetrying`, ...")
    schema_version: int = Field(description="Version the event is shown in (the current one).")
    occurred_at: datetime
    consumer: str | None = Field(description="The consumer that acted; null for requests.")
    attempt: int | None = Field(description="The attempt (1-based); null for requests.")
    payload: dict[str, Any] = Field(description="The event's own fields.")


class TimelineBody(BaseModel):
    job_id: str
    events: list[EventBody]


@router.get(
    "/v1/jobs/{job_id}/events",
    response_model=TimelineBody,
    summary="Read a job's events",
    description="Every event of the job in log order, from the archive and, for events the "
    "projector has not reached yet, the stream.",
    response_description="The job's timeline.",
    responses=RESPONSES,
)
async def get_job_events(
    job_id: JobId, svc: Annotated[Services, Depends(services)]
) -> TimelineBody:
    if not is_job_id(job_id):
        raise HTTPException(404, f"no job {job_id}")
    timeout_s = svc.settings.dependency_timeout_ms / 1000
    reader = TimelineReader(svc.engine, svc.redis, svc.settings.names, timeout_s)
    events = await reader.events(job_id)
    if not events:
        raise HTTPException(404, f"no job {job_id}")
    return TimelineBody(
        job_id=job_id,
        events=[
            EventBody(
                entry_id=e.entry_id,
                type=e.type,
                schema_version=e.schema_version,
                occurred_at=e.occurred_at,
                consumer=e.consumer,
                attempt=e.attempt,
                payload=e.payload,
            )
            for e in events
        ],
    )
