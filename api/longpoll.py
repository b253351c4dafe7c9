"""Holding a request until its job is terminal or the wait runs out (GET ?wait=, Prefer: wait).

A wait is woken by the projector's announcement (api.waiters), never by reading in a loop. An
announcement with the job's terminal row is the answer (the row as committed, and final); one
without is a hint to read the job again, the database being the answer: so a wake-up for every
waiter after a reconnect is harmless, and a lost one costs time, not correctness, because the
job is read once more when the wait runs out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.types import Receive

from api.auth import Principal
from api.deps import Services
from api.waiters import Watch
from domain.job import JobState
from readmodel.rows import from_json, to_state

log = logging.getLogger(__name__)

# The most a request may ask for; MAX_WAIT_S can only shorten it.
WAIT_LIMIT_S = 60


async def read_job(svc: Services, job_id: str) -> JobState | None:
    # Before the projector reaches a job, its JobRequested in the log says it is queued.
    return await svc.projection.job(job_id) or await svc.log.accepted_job(job_id)


def _settled(state: JobState | None) -> bool:
    return state is None or state.status.is_terminal


async def job_within(
    svc: Services, principal: Principal, job_id: str, wait_s: float, receive: Receive
) -> JobState | None:
    """The job, read after it became terminal or `wait_s` seconds passed; None if unknown, or
    another tenant's (known at the first read, before any wait, which would tell it apart)."""
    if wait_s <= 0:
        return visible(principal, await read_job(svc, job_id))
    # Registered before the read: an announcement between the two is not missed.
    with svc.waiters.watch(job_id) as watch:
        state = visible(principal, await read_job(svc, job_id))
        return await wait_for_job(svc, watch, state, wait_s, receive)


def visible(principal: Principal, state: JobState | None) -> JobState | None:
    """`state` if `principal` may see it: another tenant's job is as unknown as no job."""
    return state if state is not None and principal.sees(state.tenant) else None


async def wait_for_job(
    svc: Services, watch: Watch, state: JobState | None, wait_s: float, receive: Receive
) -> JobState | None:
    """Wait up to `wait_s` for `watch`'s job, whose state was `state` once `watch` existed."""
    if _settled(state) or wait_s <= 0:
        return state
    deadline = asyncio.get_running_loop().time() + wait_s
    async with _abandon_on_disconnect(receive, watch):
        while not _settled(state):
            woken = await watch.wait(deadline)
            if watch.abandoned:
                break
            state = announced(watch) or await read_job(svc, watch.job_id)
            if not woken:
                break
    return state


def announced(watch: Watch) -> JobState | None:
    """The terminal row the wake brought, if any: committed and final, so it is what a read
    would return, without the read."""
    raw = watch.take_row()
    if raw is None:
        return None
    try:
        state = to_state(from_json(raw))
    except (ValueError, KeyError, TypeError) as exc:  # a message from elsewhere: read instead
        log.warning("unreadable row announced for job %s: %s", watch.job_id, exc)
        return None
    return state if state.job_id == watch.job_id and state.status.is_terminal else None


@asynccontextmanager
async def _abandon_on_disconnect(receive: Receive, watch: Watch) -> AsyncIterator[None]:
    """Stop waiting when the client goes away, instead of holding the watch to the deadline."""
    listening = asyncio.create_task(_until_disconnect(receive))
    listening.add_done_callback(lambda _: watch.abandon())
    try:
        yield
    finally:
        listening.cancel()
        # Collected so that neither its cancellation nor an error of its own is reported.
        await asyncio.gather(listening, return_exceptions=True)


async def _until_disconnect(receive: Receive) -> None:
    # The body, if any, was read already: what remains is an empty request message, if that,
    # then the disconnect.
    while (await receive())["type"] != "http.disconnect":
        pass
