"""GET /v1/jobs/{job_id}/events: every event of a job, in log order; as JSON, or live as
Server-Sent Events (`Accept: text/event-stream`) until the job is terminal.

A live stream starts as the JSON timeline does (the archive in PostgreSQL, then the part of the
job's lane stream the projector has not reached), then follows the lane through the lane's
shared reader (api.lanetails); a terminal announcement of the projector (api.waiters) makes it
read at once. No stream holds a PostgreSQL connection: the archive is read once, before the
stream starts.

Resuming: each event's SSE id is its stream entry id, ordered within the job (all of a job's
events are in its lane's stream); with Last-Event-ID the stream sends exactly the events after
it. A stream lasts at most api.sse.LIFE_S; the client then reconnects with Last-Event-ID. A
request resuming at or after the job's terminal event is 204 No Content, which tells an
EventSource (which reconnects whenever a stream ends) to stop.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request, Response

from api import sse, timelines
from api.deps import Reader, Services, ServicesDep
from api.errors import DependencyUnavailableError, RefusedRequestError
from api.lanetails import LaneTail, LaneTails, followed
from api.longpoll import read_job, visible
from api.openapi import example, problem_response
from api.params import JobId
from api.responses import READ_JOB
from api.schemas import TimelineBody
from api.waiters import Watch
from domain.events import TERMINAL_EVENT_TYPES
from domain.ids import is_job_id
from eventlog.lanes import DEFAULT_LANE
from eventlog.positions import START, position
from readmodel import timeline
from readmodel.timeline import TimelineEvent

log = logging.getLogger(__name__)

router = APIRouter()

_TERMINAL = frozenset(cls.__name__ for cls in TERMINAL_EVENT_TYPES)
# A stream entry id as Redis writes them: what every event id of this stream is.
_ENTRY_ID = re.compile(r"^[0-9]{1,20}-[0-9]{1,20}$")

_EVENT_STREAM_EXAMPLE = (
    "event: JobRequested\n"
    'data: {"entry_id":"1795869653593-0","type":"JobRequested","schema_version":3,...}\n'
    "id: 1795869653593-0\n\n"
    ": heartbeat\n\n"
    "event: JobStarted\n"
    'data: {"entry_id":"1795869653601-0","type":"JobStarted","schema_version":1,...}\n'
    "id: 1795869653601-0\n\n"
)

RESPONSES: dict[int | str, dict[str, Any]] = {
    **READ_JOB,
    200: {
        "description": "The job's timeline (JSON); or, with `Accept: text/event-stream`, its "
        "events as Server-Sent Events as they happen, from the first (or after Last-Event-ID), "
        "each with `event:` its type, `id:` its stream entry id and `data:` the event as JSON "
        f"(the timeline's event object); a `: heartbeat` comment after {sse.HEARTBEAT_S:g} s "
        "of silence. The stream ends after the job's terminal event, or after "
        f"{sse.LIFE_S:g} s: reconnect then with Last-Event-ID.",
        "content": {
            sse.MEDIA_TYPE: {"schema": {"type": "string"}, "example": _EVENT_STREAM_EXAMPLE}
        },
    },
    204: {
        "description": "Event stream only: Last-Event-ID is the job's terminal event or later; "
        "there is nothing more to send (an EventSource stops reconnecting)."
    },
    400: problem_response(
        "Last-Event-ID is not an event id of this stream (a stream entry id, `<ms>-<seq>`).",
        example(
            400,
            "invalid-last-event-id",
            "Invalid Last-Event-ID",
            "Last-Event-ID must be an event id this stream sent, like 1795869653593-0.",
        ),
    ),
}


@router.get(
    "/v1/jobs/{job_id}/events",
    response_model=TimelineBody,
    summary="Read a job's events, or follow them live",
    description="Every event of the job in log order, from the archive and, for events the "
    "projector has not reached yet, the stream. With `Accept: text/event-stream`, the same "
    "events as Server-Sent Events as they happen, until the job is terminal; Last-Event-ID "
    "resumes after that event.",
    response_description="The job's timeline.",
    responses=RESPONSES,
)
async def get_job_events(
    job_id: JobId,
    request: Request,
    svc: ServicesDep,
    principal: Reader,
    last_event_id: Annotated[
        str | None,
        Header(
            alias=sse.LAST_EVENT_ID,
            description="Event stream only: the id of the last event received; the stream "
            "sends the events after it. An EventSource sends it when it reconnects.",
        ),
    ] = None,
) -> TimelineBody | Response:
    live = sse.wanted(request.headers.get("accept"))
    after = _resume_after(last_event_id) if live else START
    if not is_job_id(job_id):
        raise HTTPException(404, f"no job {job_id}")
    job = await read_job(svc, job_id)
    # The job names its tenant; another tenant's is as unknown as no job.
    if not principal.admin and visible(principal, job) is None:
        raise HTTPException(404, f"no job {job_id}")
    # Its events are all in its lane (a job known to neither the projection nor the log, which
    # only an admin gets this far with: the default lane's, as before lanes).
    lane = timeline.lane_of(job.lane, job.tenant) if job is not None else DEFAULT_LANE
    known, scanned = await timelines.catch_up(svc, job_id, lane)
    if not known:
        raise HTTPException(404, f"no job {job_id}")
    if not live:
        bodies = [timelines.body(event) for event in known]
        return TimelineBody(job_id=job_id, events=bodies)
    ended = any(event.type in _TERMINAL for event in known)
    if ended and position(known[-1].entry_id) <= position(after):
        return Response(status_code=204)
    frames = _frames(svc, _tails(request, svc), job_id, known, scanned, after, ended)
    return sse.response(frames)


def _resume_after(header: str | None) -> str:
    value = sse.last_event_id(header)
    if value is None:
        return START
    if not _ENTRY_ID.match(value):
        raise RefusedRequestError(
            "invalid-last-event-id",
            "Invalid Last-Event-ID",
            "Last-Event-ID must be an event id this stream sent, like 1795869653593-0.",
        )
    return value


def _frame(event: TimelineEvent) -> bytes:
    return sse.event(event.type, timelines.body(event).model_dump_json(), id=event.entry_id)


async def _frames(
    svc: Services,
    tails: LaneTails,
    job_id: str,
    known: list[TimelineEvent],
    scanned: tuple[str, str],
    after: str,
    ended: bool,
) -> AsyncIterator[bytes]:
    """The job's events after `after`: the `known` ones, then, unless it `ended`, those its
    lane's reader finds, until the terminal one."""
    sent = position(after)
    for event in known:
        if position(event.entry_id) > sent:
            yield _frame(event)
            sent = position(event.entry_id)
    if ended:
        return
    stream, read_to = scanned
    with tails.follow(stream, job_id, read_to) as follower, svc.waiters.watch(job_id) as watch:
        # The projector's word that the job is terminal: its last event is in the stream, so
        # the reader need not wait for its next poll.
        poking = asyncio.create_task(_poke_when_announced(watch, follower.tail))
        try:
            async for batch in followed(svc, follower, job_id, read_to):
                for event in batch:
                    if position(event.entry_id) <= sent:
                        continue
                    yield _frame(event)
                    sent = position(event.entry_id)
                    if event.type in _TERMINAL:
                        return
        except DependencyUnavailableError as exc:
            # The status is sent already: end, and let the client resume when Redis is back.
            log.warning("event stream of job %s ends: %s", job_id, exc)
            yield sse.comment("redis unavailable; reconnect with Last-Event-ID")
        finally:
            poking.cancel()


async def _poke_when_announced(watch: Watch, tail: LaneTail) -> None:
    loop = asyncio.get_running_loop()
    while True:
        if await watch.wait(loop.time() + sse.LIFE_S):
            tail.poke()


def _tails(request: Request, svc: Services) -> LaneTails:
    """This process's lane readers (one set per application, made on first use)."""
    state = request.app.state
    tails: LaneTails | None = getattr(state, "lane_tails", None)
    if tails is None:
        tails = state.lane_tails = LaneTails(svc.redis, svc.timeout_s)
    return tails
