"""Cancelling from the API: one job (POST /v1/jobs/{job_id}/cancel) and the unfinished jobs of a
batch (POST /v1/batches/{batch_id}/cancel).

A job is cancelled by the CANCEL script in its partition (eventlog.runs), which decides against
the job's consumer atomically: whichever of the cancel and the outcome is written first is the
job's one terminal event. A queued job then never starts; a running one's outcome is dropped.
The answer is the job folded with the JobCancelled the script wrote, so it needs no projector.
A job that had ended is a 409 that says how (a second cancel answers the cancelled job: 200).

A batch's cancel first marks the batch cancelled in every partition (`Names.batch_cancelled`):
from then on its jobs still queued end cancelled when a consumer reaches them (START), and its
running ones when they finish (FINISH), projected or not. Then every unfinished job of the batch
that the projection knows is cancelled at once, a chunk at a time, so that they end now rather
than when a consumer reaches them. The writes wait for SUBMIT_REPLICAS replicas, as
submissions do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import NoScriptError
from starlette.types import Receive

from api import batches
from api.auth import Principal
from api.batches import BatchBody
from api.deps import Services
from api.errors import RefusedRequestError
from api.guard import guarded_again
from api.longpoll import job_within, read_job, visible
from domain.cancellation import CancelReason
from domain.events import JobCancelled
from domain.job import JobState, JobStatus, evolve
from eventlog import runs, scripts
from eventlog.runs import Cancel, Decision, Verdict
from eventlog.writes import sha1
from readmodel import batches as batch_sql
from readmodel import timeline
from readmodel.listing import last_position

# Jobs of a batch read and cancelled per round trip.
CHUNK = 500
# How long a cancel that finds its job cancelled already (by another request, not projected
# yet) waits for the projector to show it.
SETTLE_S = 5.0

_ENDED_AS = {"JobSucceeded": JobStatus.SUCCEEDED, "JobFailed": JobStatus.FAILED}


def _by(principal: Principal) -> str:
    """Who cancels, as the JobCancelled names it: the API key (its id, never the key)."""
    return f"api:{principal.key_id}" if principal.key_id else "api"


def job_ended(job_id: str, status: JobStatus) -> RefusedRequestError:
    return RefusedRequestError(
        "job-ended",
        "Job already ended",
        f"job {job_id} is {status.value}: only a queued or started job can be cancelled",
        status=409,
        job_status=status.value,
    )


async def cancel_job(
    svc: Services, principal: Principal, job_id: str, receive: Receive
) -> JobState | None:
    """Cancel `job_id` for `principal`: the job, cancelled; None when it is unknown to
    `principal` (another tenant's included). A job that ended otherwise is `job_ended`."""
    state = visible(principal, await read_job(svc, job_id))
    if state is None:
        return None
    if state.status.is_terminal:
        if state.status is JobStatus.CANCELLED:
            return state
        raise job_ended(job_id, state.status)
    at = datetime.now(UTC)
    lane = timeline.lane_of(state.lane, state.tenant)
    cancel = Cancel(job_id, lane, CancelReason.REQUESTED, _by(principal), at)
    (decision,) = await _cancel(svc, [cancel])
    if decision.verdict is Verdict.CANCELLED:
        return evolve(
            state, JobCancelled(job_id=job_id, occurred_at=at, reason=decision.detail, by=cancel.by)
        )
    ended = _ENDED_AS.get(decision.ended_as)
    if ended is not None:
        raise job_ended(job_id, ended)
    # Cancelled already, by a request the projector has not shown yet: wait for it a little.
    again = await job_within(
        svc, principal, job_id, min(SETTLE_S, svc.settings.max_wait_s), receive
    )
    if again is not None and again.status.is_terminal:
        return again
    return replace(state, status=JobStatus.CANCELLED, cancel_reason=decision.cancel_reason)


async def cancel_batch(svc: Services, principal: Principal, batch_id: str) -> BatchBody | None:
    """Cancel `batch_id`'s unfinished jobs for `principal`: the batch as it then is (status
    `cancelling`, or `cancelled` when no job was left running); None when it is unknown to
    `principal`. A batch whose jobs had all ended without a cancel is a 409."""
    found = await batches.find(svc, principal, batch_id)
    if found is None:
        return None
    if found.body.status == "completed":
        raise RefusedRequestError(
            "batch-ended",
            "Batch already ended",
            f"batch {batch_id} is completed: every job of it has ended",
            status=409,
        )
    await _mark(svc, batch_id)
    by, after = _by(principal), None
    while True:
        rows = await svc.projection.rows(
            *batch_sql.unfinished_query(found.tenant, batch_id, after, CHUNK)
        )
        if not rows:
            break
        at = datetime.now(UTC)
        await _cancel(
            svc,
            [
                Cancel(
                    str(row["job_id"]),
                    timeline.lane_of(row["lane"], found.tenant),
                    CancelReason.BATCH_CANCELLED,
                    by,
                    at,
                )
                for row in rows
            ],
        )
        if len(rows) < CHUNK:
            break
        after = last_position(rows)
    return (await batches.reread(svc, found)).body


async def _mark(svc: Services, batch_id: str) -> None:
    """Mark the batch cancelled in every partition, for as long as its jobs may be queued."""
    names, ttl_s = svc.settings.names, str(svc.settings.job_index_ttl_s)
    calls = [
        ([names.batch_cancelled(p, batch_id)], [ttl_s]) for p in range(svc.settings.partitions)
    ]
    await _scripts(svc, scripts.MARK, calls)


async def _cancel(svc: Services, cancels: Sequence[Cancel]) -> list[Decision]:
    names, ttl_s = svc.settings.names, svc.settings.job_index_ttl_s
    calls = [runs.cancel_call(names, names.workers_group, ttl_s, cancel) for cancel in cancels]
    return [runs.parse(reply) for reply in await _scripts(svc, scripts.CANCEL, calls)]


async def _scripts(svc: Services, source: str, calls: Sequence[runs.Call]) -> list[Any]:
    """Run `source` once per (KEYS, ARGV), pipelined; with SUBMIT_REPLICAS, once enough
    replicas hold the writes. Safe to repeat: a second CANCEL of a job finds it ended."""
    writer = svc.log.replicated

    async def attempt() -> list[Any]:
        if writer is not None:
            return await writer.run([(source, keys, argv) for keys, argv in calls])
        return await _evalsha(svc, source, calls)

    return await guarded_again("redis", svc.timeout_s, attempt)


async def _evalsha(svc: Services, source: str, calls: Sequence[runs.Call]) -> list[Any]:
    """EVALSHA for every call in one pipeline; the calls that met NOSCRIPT (Redis lost its
    script cache) ran nothing, and go again once the script is loaded."""

    async def send(sent: Sequence[runs.Call]) -> list[Any]:
        pipe = svc.redis.pipeline(transaction=False)
        for keys, argv in sent:
            pipe.execute_command("EVALSHA", sha1(source), len(keys), *keys, *argv)
        return list(await pipe.execute(raise_on_error=False))

    replies = await send(calls)
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        await svc.redis.script_load(source)
        for i, reply in zip(missing, await send([calls[i] for i in missing]), strict=True):
            replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies
