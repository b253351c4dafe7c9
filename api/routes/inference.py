"""POST /v1/inference: accept a job onto the event log, and with `Prefer: wait=N` wait for it."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request, Response

from api import prefer, submission
from api.auth import Principal
from api.deps import CancelAfterMs, IdempotencyKey, Services, ServicesDep, Submitter, charge
from api.limits import JsonBodyRoute
from api.longpoll import job_within, wait_for_job
from api.responses import (
    CANCEL_AFTER_PARAMETER,
    IDEMPOTENCY_KEY_PARAMETER,
    PREFER_PARAMETER,
    SUBMIT,
)
from api.schemas import MAX_TEXT_CHARS, InferenceRequest, JobAccepted, JobBody
from domain.events import JobRequested
from domain.job import JobState, evolve
from eventlog.submission import Submission

# The JSON gate runs before FastAPI parses the body: 415 and 400 come before any 422.
router = APIRouter(route_class=JsonBodyRoute)


@router.post(
    "/v1/inference",
    status_code=202,
    response_model=JobAccepted | JobBody,
    summary="Submit a text for classification",
    description=f"Accepts a job: `text` (1 to {MAX_TEXT_CHARS} characters after stripping) and "
    "an optional `model_version`. Answers 202 `{job_id, status}` as soon as the job is in the "
    "event log. With `Prefer: wait=N`, waits for the outcome first (woken by the projector, "
    "not by polling) and answers with the whole job: 200 when it is terminal, 202 when the "
    "wait ran out.",
    response_description="Accepted: the job is in the event log (or this replays it); with "
    "`Prefer: wait=N`, the job as it was when the wait ran out.",
    responses=SUBMIT,
    openapi_extra={
        "parameters": [IDEMPOTENCY_KEY_PARAMETER, PREFER_PARAMETER, CANCEL_AFTER_PARAMETER]
    },
)
async def submit(
    body: InferenceRequest,
    request: Request,
    response: Response,
    svc: ServicesDep,
    principal: Submitter,
    key: IdempotencyKey,
    cancel_after_ms: CancelAfterMs,
) -> JobAccepted | JobBody:
    await charge(svc, request, principal, jobs=1)
    accepting = _Accepting(body, request, response, svc, principal, key, cancel_after_ms)
    wait_s = prefer.wait_seconds(request.headers.getlist(prefer.HEADER), svc.settings.max_wait_s)
    if wait_s is None:
        _event, accepted = await accepting.accept(svc.log.placement.job_id())
        if svc.settings.poll_retry_after_s:
            # When a poll first has a chance of news; a long-poll's answer says nothing (the
            # client was told to wait already).
            response.headers["Retry-After"] = str(svc.settings.poll_retry_after_s)
        return JobAccepted(job_id=accepted.job_id)
    response.headers[prefer.APPLIED_HEADER] = prefer.applied_wait(wait_s)
    job_id, state = await _accept_and_wait(accepting, wait_s)
    if state is None:  # a replayed job no longer readable: nothing better than the 202
        return JobAccepted(job_id=job_id)
    if state.status.is_terminal:
        response.status_code = 200
    return JobBody.of(state)


async def _accept_and_wait(accepting: _Accepting, wait_s: float) -> tuple[str, JobState | None]:
    svc, request, principal = accepting.svc, accepting.request, accepting.principal
    # Watched before the job exists: its outcome cannot be announced before this request listens.
    with svc.waiters.watch(svc.log.placement.job_id()) as watch:
        event, accepted = await accepting.accept(watch.job_id)
        if accepted.created and accepted.job_id == watch.job_id:
            # A new job is queued: no need to read what was just written. (One the cap moved
            # to another partition has another id: it is waited for below.)
            queued = evolve(None, event)
            return event.job_id, await wait_for_job(svc, watch, queued, wait_s, request.receive)
    replayed = await job_within(svc, principal, accepted.job_id, wait_s, request.receive)
    return accepted.job_id, replayed


@dataclass(frozen=True, slots=True)
class _Accepting:
    """One submission on its way in."""

    body: InferenceRequest
    request: Request
    response: Response
    svc: Services
    principal: Principal
    key: str | None
    cancel_after_ms: int | None

    async def accept(self, job_id: str) -> tuple[JobRequested, Submission]:
        traceparent = self.request.headers.get("traceparent") or ""
        event, accepted = await submission.accept(
            self.svc,
            self.principal.tenant,
            self.body,
            self.key,
            job_id,
            traceparent,
            self.cancel_after_ms,
        )
        if not accepted.created:
            self.response.headers[submission.REPLAY_HEADER] = "true"
        self.response.headers["Location"] = f"/v1/jobs/{accepted.job_id}"
        return event, accepted
