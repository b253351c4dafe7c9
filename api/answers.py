"""A job's answer to GET /v1/jobs/{job_id}: from what this process knows of the job (finished
jobs in api.terminal, unfinished ones read lately in api.unfinished), else read (the
projection, before it the log) and kept for the reads that follow. Another tenant's job is
None, as a job that does not exist is."""

from __future__ import annotations

from starlette.types import Receive

from api import conditional
from api.auth import Principal
from api.conditional import Rendered
from api.deps import Services
from api.longpoll import job_within, read_job, visible
from domain.job import JobState


async def current(svc: Services, principal: Principal, job_id: str) -> Rendered | None:
    """The job as this process knows it, or as read now."""
    known = svc.waiters.terminal.get(job_id) or svc.waiters.unfinished.get(job_id)
    if known is not None:
        return known if principal.sees(known.tenant) else None
    state = visible(principal, await read_job(svc, job_id))
    return None if state is None else kept(svc, state)


async def within(
    svc: Services, principal: Principal, job_id: str, wait_s: float, receive: Receive
) -> Rendered | None:
    """The job once it is terminal, or as read when `wait_s` runs out (a long-poll)."""
    finished = svc.waiters.terminal.get(job_id)
    if finished is not None:
        return finished if principal.sees(finished.tenant) else None
    state = await job_within(svc, principal, job_id, wait_s, receive)
    return None if state is None else kept(svc, state)


def kept(svc: Services, state: JobState) -> Rendered:
    """`state` rendered, and kept for the reads that follow."""
    rendered = conditional.render(state)
    svc.waiters.terminal.remember(state.job_id, rendered)
    svc.waiters.unfinished.remember(state, rendered)
    return rendered
