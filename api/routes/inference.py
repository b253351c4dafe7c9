"""POST /v1/inference: accept a job onto the event log, and with `Prefer: wait=N` wait for it."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from api import metrics, prefer
from api.deps import Services, services
from api.limits import JsonBodyRoute
from api.longpoll import WAIT_LIMIT_S, job_within, wait_for_job
from api.openapi import RETRY_AFTER, SERVER_ERROR, UNSUPPORTED_MEDIA_TYPE, example, problem_response
from api.problems import RefusedRequestError
from api.routes.jobs import to_body
from api.schemas import (
    MAX_TEXT_CHARS,
    InferenceRequest,
    JobAccepted,
    JobBody,
    UnprocessableProblem,
)
from api.store import utcnow
from domain.errors import IdempotencyKeyReusedError
from domain.events import JobRequested
from domain.ids import new_job_id
from domain.job import JobState, evolve
from infra import spans, tracing
from infra.eventlog import Submission

# The JSON gate runs before FastAPI parses the body: 415 and 400 come before any 422.
router = APIRouter(route_class=JsonBodyRoute)

KEY_HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
# Printable ASCII; HTTP strips surrounding spaces, so a key can neither start nor end with one.
KEY_PATTERN = "^[!-~]([ -~]{0,253}[!-~])?$"
_KEY = re.compile(KEY_PATTERN)

IDEMPOTENCY_KEY_PARAMETER = {
    "name": KEY_HEADER,
    "in": "header",
    "required": False,
    "description": "Makes the submission safe to retry: 1 to 255 printable ASCII characters "
    "(no surrounding spaces), sent at most once. See Idempotency in the API description.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": KEY_PATTERN},
    "example": "order-4711-retry-safe",
}

ACCEPTED_HEADERS = {
    "Location": {
        "description": "Where to read the job: /v1/jobs/{job_id}.",
        "required": True,
        "schema": {"type": "string"},
    },
    REPLAY_HEADER: {
        "description": "Present, and `true`, only when this 202 replays the job that the "
        "Idempotency-Key already named.",
        "required": False,
        "schema": {"type": "string", "enum": ["true"]},
    },
}

PREFER_PARAMETER = {
    "name": prefer.HEADER,
    "in": "header",
    "required": False,
    "description": "RFC 7240 preferences. `wait=N` (whole seconds, more than "
    f"{WAIT_LIMIT_S} taken as {WAIT_LIMIT_S}) holds the answer until the job is succeeded or "
    "failed, or N seconds passed: then 200 with the terminal job, else 202 with the job as it "
    "is, both with `Preference-Applied`. Other preferences are ignored.",
    "schema": {"type": "string"},
}

WAITED_HEADERS = {
    **ACCEPTED_HEADERS,
    prefer.APPLIED_HEADER: {
        "description": "With `Prefer: wait=N` only: the wait honoured, `wait=N` (the server "
        "may wait less than asked).",
        "required": False,
        "schema": {"type": "string"},
    },
}
FINISHED_HEADERS = {
    **WAITED_HEADERS,
    REPLAY_HEADER: {
        **ACCEPTED_HEADERS[REPLAY_HEADER],
        "description": "Present, and `true`, only when this answer is about the job that the "
        "Idempotency-Key already named.",
    },
}

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": JobBody,
        "description": "With `Prefer: wait=N` only: the job, terminal within the wait.",
        "headers": FINISHED_HEADERS,
    },
    202: {"headers": WAITED_HEADERS},
    400: problem_response(
        "The body is not UTF-8 JSON, or the Idempotency-Key is invalid.",
        example(400, "malformed-json", "Malformed JSON", "The body is empty; send a JSON object."),
        example(
            400,
            "invalid-idempotency-key",
            "Invalid Idempotency-Key",
            "Idempotency-Key must be 1 to 255 printable ASCII characters, sent once.",
        ),
    ),
    413: problem_response(
        "The body is larger than MAX_BODY_BYTES.",
        example(
            413,
            "content-too-large",
            "Content too large",
            "The request body is larger than 65536 bytes.",
        ),
    ),
    **UNSUPPORTED_MEDIA_TYPE,
    422: problem_response(
        "JSON that is not a valid request, an unknown model version, or a reused key.",
        example(
            422,
            "validation-error",
            "Invalid request",
            "body.text: Value error, text must not be blank",
            errors=[
                {
                    "field": "body.text",
                    "message": "Value error, text must not be blank",
                    "type": "value_error",
                }
            ],
        ),
        example(
            422,
            "unknown-model-version",
            "Unknown model version",
            "unknown model version 'v9' (available: spam-tfidf-lr-v1)",
            available=["spam-tfidf-lr-v1"],
        ),
        example(
            422,
            "idempotency-key-reused",
            "Idempotency-Key reused",
            "this Idempotency-Key was used with a different request body",
        ),
        model=UnprocessableProblem,
    ),
    503: problem_response(
        "Redis did not answer; the job was not stored. Retry after Retry-After seconds.",
        example(
            503,
            "dependency-unavailable",
            "Service unavailable",
            "redis unavailable: Connection refused",
        ),
        headers=RETRY_AFTER,
    ),
    **SERVER_ERROR,
}


def request_fingerprint(text: str, model_version: str) -> str:
    canonical = json.dumps({"model_version": model_version, "text": text}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def idempotency_key(request: Request) -> str | None:
    """The request's key, checked before the body is validated (a bad key is 400, not 422)."""
    values = request.headers.getlist(KEY_HEADER)
    if not values:
        return None
    if len(values) > 1 or not _KEY.fullmatch(values[0]):
        raise RefusedRequestError(
            "invalid-idempotency-key",
            "Invalid Idempotency-Key",
            "Idempotency-Key must be 1 to 255 printable ASCII characters, sent once.",
        )
    return values[0]


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
    responses=RESPONSES,
    openapi_extra={"parameters": [IDEMPOTENCY_KEY_PARAMETER, PREFER_PARAMETER]},
)
async def submit(
    body: InferenceRequest,
    request: Request,
    response: Response,
    svc: Annotated[Services, Depends(services)],
    key: Annotated[str | None, Depends(idempotency_key)],
) -> JobAccepted | JobBody:
    wait_s = prefer.wait_seconds(request.headers.getlist(prefer.HEADER), svc.settings.max_wait_s)
    if wait_s is None:
        _event, submission = await _accept(body, request, response, svc, key, new_job_id())
        return JobAccepted(job_id=submission.job_id)
    response.headers[prefer.APPLIED_HEADER] = prefer.applied_wait(wait_s)
    job_id, state = await _accept_and_wait(body, request, response, svc, key, wait_s)
    if state is None:  # a replayed job no longer readable: nothing better than the 202
        return JobAccepted(job_id=job_id)
    if state.status.is_terminal:
        response.status_code = 200
    return to_body(state)


async def _accept_and_wait(
    body: InferenceRequest,
    request: Request,
    response: Response,
    svc: Services,
    key: str | None,
    wait_s: float,
) -> tuple[str, JobState | None]:
    # Watched before the job exists: its outcome cannot be announced before this request listens.
    with svc.waiters.watch(new_job_id()) as watch:
        event, submission = await _accept(body, request, response, svc, key, watch.job_id)
        if submission.created:
            # A new job is queued: no need to read what was just written.
            queued = evolve(None, event)
            return event.job_id, await wait_for_job(svc, watch, queued, wait_s, request.receive)
    replayed = await job_within(svc, submission.job_id, wait_s, request.receive)
    return submission.job_id, replayed


async def _accept(
    body: InferenceRequest,
    request: Request,
    response: Response,
    svc: Services,
    key: str | None,
    job_id: str,
) -> tuple[JobRequested, Submission]:
    """Append the job as `job_id`, or find the job the key already named; sets the headers."""
    version = body.model_version or svc.settings.default_model_version
    svc.require_model(version)
    header = request.headers.get("traceparent") or ""
    with spans.span("inferflow.submit", header, **{"inferflow.model_version": version}) as current:
        event = JobRequested(
            job_id=job_id,
            occurred_at=utcnow(),
            text=body.text,
            model_version=version,
            # With spans on, the job's work hangs under this request's span.
            traceparent=current.traceparent or tracing.accept(header),
        )
        current.set(**{"inferflow.job_id": event.job_id})
        fingerprint = request_fingerprint(body.text, version)
        submission = await svc.log.submit(
            event, key, fingerprint, svc.settings.job_index_ttl_s, svc.settings.idempotency_ttl_s
        )
        if not submission.created:
            replayed: dict[str, spans.AttributeValue] = {
                "inferflow.job_id": submission.job_id,
                "inferflow.replayed": True,
            }
            current.set(**replayed)
    if not submission.created:
        if submission.fingerprint != fingerprint:
            raise IdempotencyKeyReusedError(
                "this Idempotency-Key was used with a different request body"
            )
        response.headers[REPLAY_HEADER] = "true"
        metrics.IDEMPOTENT_REPLAYS.inc()
    else:
        metrics.JOBS_SUBMITTED.inc()
    response.headers["Location"] = f"/v1/jobs/{submission.job_id}"
    return event, submission
