"""A job's timeline as the API reads it: the archive in PostgreSQL up to its lane's checkpoint,
then the part of the lane's stream the projector has not reached (readmodel.timeline). Read by
GET /v1/jobs/{job_id}/events and by the console's job page."""

from __future__ import annotations

from api.deps import Services
from api.guard import guarded
from api.schemas import EventBody
from eventlog.lanes import Lane
from readmodel import timeline
from readmodel.timeline import TimelineEvent


def body(event: TimelineEvent) -> EventBody:
    return EventBody.model_validate(event, from_attributes=True)


async def catch_up(
    svc: Services, job_id: str, lane: Lane
) -> tuple[list[TimelineEvent], tuple[str, str]]:
    """The job's events so far, and where its lane's stream was read to: (the stream, the last
    entry read, of any job). The JSON timeline reads at most timeline.MAX_PAGES pages of the
    stream; a live stream reads the rest as it follows."""
    checkpoint, archived = await svc.projection.archived(job_id, lane)
    async with guarded("redis", svc.timeout_s):
        names = svc.settings.names
        stream, start = await timeline.stream_start(svc.redis, names, job_id, checkpoint, lane)
        streamed, last = await timeline.scan(svc.redis, stream, job_id, start)
    events = timeline.timeline(timeline.merge(archived, streamed), job_id)
    # Nothing read: the stream ended before `start` (new entries come after it).
    return events, (stream, last or start.removeprefix("("))
