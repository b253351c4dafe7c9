"""What the OpenAPI description says each route answers: responses, headers, parameters.

Kept apart from the routes so that a route reads as what it does; api.openapi holds the helpers
these are built with and the description of the whole API.
"""

from __future__ import annotations

from typing import Any

from api import deadlines, prefer
from api.batches import EXAMPLE_BATCH_ID
from api.longpoll import WAIT_LIMIT_S
from api.openapi import RETRY_AFTER, SERVER_ERROR, UNSUPPORTED_MEDIA_TYPE, example, problem_response
from api.schemas import (
    EXAMPLE_JOB_ID,
    KEY_PATTERN,
    JobBody,
    NotReadyProblem,
    RetiredProblem,
    UnprocessableProblem,
)
from api.submission import KEY_HEADER, REPLAY_HEADER


def unavailable(description: str) -> dict[str, Any]:
    """A 503 for when Redis or PostgreSQL did not answer: `description` says what that means
    for the request; the client is told to retry after Retry-After."""
    return problem_response(
        f"{description} Retry after Retry-After seconds.",
        example(
            503,
            "dependency-unavailable",
            "Service unavailable",
            "redis unavailable: Connection refused",
        ),
        headers=RETRY_AFTER,
    )


def _redis_unavailable(consequence: str) -> dict[str, Any]:
    return unavailable(f"Redis did not answer; {consequence}.")


def _postgres_unavailable(what: str) -> dict[str, Any]:
    return problem_response(
        f"{what} Retry after Retry-After seconds.",
        example(
            503,
            "dependency-unavailable",
            "Service unavailable",
            "postgres unavailable: no answer within 2.0 s",
        ),
        headers=RETRY_AFTER,
    )


# ---------------------------------------------------------------- POST /v1/inference

IDEMPOTENCY_KEY_PARAMETER = {
    "name": KEY_HEADER,
    "in": "header",
    "required": False,
    "description": "Makes the submission safe to retry: 1 to 255 printable ASCII characters "
    "(no surrounding spaces), sent at most once. See Idempotency in the API description.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": KEY_PATTERN},
    "example": "order-4711-retry-safe",
}

CANCEL_AFTER_PARAMETER = {
    "name": deadlines.HEADER,
    "in": "header",
    "required": False,
    "description": "Cancel the job unless it has ended this long after it is accepted: "
    f"{deadlines.RULE}. A job not started by then ends cancelled as `expired` without "
    "running; one still running, as `timed_out`. For a batch, the items without a "
    "`cancel_after` of their own. Anything else is 400 invalid-cancel-after.",
    "schema": {"type": "string"},
    "example": "5m",
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
ACCEPTED_RETRY_AFTER = {
    "Retry-After": {
        "description": "Without `Prefer: wait` only: seconds before a first poll of the job is "
        "worth it (POLL_RETRY_AFTER_S); absent when it is 0. A client may ignore it, or "
        "long-poll instead.",
        "required": False,
        "schema": {"type": "integer", "minimum": 1},
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

MODEL_RETIRED = problem_response(
    "The model version is retired: nothing was stored; send `replacement` instead.",
    example(
        410,
        "model-retired",
        "Model version retired",
        "model version 'intents-v1' is retired: use 'intents-v2'",
        replacement="intents-v2",
    ),
    model=RetiredProblem,
)

SUBMIT: dict[int | str, dict[str, Any]] = {
    200: {
        "model": JobBody,
        "description": "With `Prefer: wait=N` only: the job, terminal within the wait.",
        "headers": FINISHED_HEADERS,
    },
    202: {"headers": {**WAITED_HEADERS, **ACCEPTED_RETRY_AFTER}},
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
    410: MODEL_RETIRED,
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
    503: _redis_unavailable("the job was not stored"),
    **SERVER_ERROR,
}


# ---------------------------------------------------------------- POST /v1/inference/batch

SUBMIT_BATCH: dict[int | str, dict[str, Any]] = {
    400: problem_response(
        "The body is not UTF-8 JSON.",
        example(400, "malformed-json", "Malformed JSON", "The body is empty; send a JSON object."),
    ),
    413: problem_response(
        "The body is larger than BATCH_MAX_BODY_BYTES.",
        example(
            413,
            "content-too-large",
            "Content too large",
            "The request body is larger than 8388608 bytes.",
        ),
    ),
    **UNSUPPORTED_MEDIA_TYPE,
    422: problem_response(
        "The body is not an object with `items`, 1 to BATCH_MAX_ITEMS of them. Invalid items "
        "are not a 422: they are rejected one by one in the 202.",
        example(
            422,
            "validation-error",
            "Invalid request",
            "body.items: List should have at most 1000 items, not 1001",
            errors=[
                {
                    "field": "body.items",
                    "message": "List should have at most 1000 items, not 1001",
                    "type": "too_long",
                }
            ],
        ),
        model=UnprocessableProblem,
    ),
    503: _redis_unavailable("no job of the batch was stored"),
    **SERVER_ERROR,
}


# ---------------------------------------------------------------- GET /v1/jobs/{job_id}[/events]

READ_JOB: dict[int | str, dict[str, Any]] = {
    404: problem_response(
        "No job with this id was ever accepted (or the id is not in the UUID format).",
        example(404, "http-404", "Not Found", f"no job {EXAMPLE_JOB_ID}"),
    ),
    422: problem_response(
        f"`wait` is not a number from 0 to {WAIT_LIMIT_S}.",
        example(
            422,
            "validation-error",
            "Invalid request",
            "query.wait: Input should be less than or equal to 60",
            errors=[
                {
                    "field": "query.wait",
                    "message": "Input should be less than or equal to 60",
                    "type": "less_than_equal",
                }
            ],
        ),
        model=UnprocessableProblem,
    ),
    503: _postgres_unavailable("PostgreSQL or Redis did not answer."),
    **SERVER_ERROR,
}


# ---------------------------------------------------------------- GET /ready

NOT_READY = problem_response(
    "A dependency is down, or the projector is further behind than READY_MAX_PROJECTOR_LAG_S.",
    example(
        503,
        "not-ready",
        "Not ready",
        "redis: Connection refused",
        checks={
            "redis": {"status": "down", "reason": "Connection refused"},
            "postgres": {"status": "ok"},
        },
    ),
    model=NotReadyProblem,
    headers=RETRY_AFTER,
)


# ---------------------------------------------------------------- keys, scopes and limits

RATE_LIMIT_HEADERS = {
    "RateLimit-Policy": {
        "description": "The limits of this route that apply to the request (IETF httpapi "
        'draft "RateLimit header fields for HTTP"): one member per limit, its quota `q` '
        'and window `w` in seconds, e.g. `"requests";q=100;w=1`. Only where limits are set.',
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": "What is left of each limit after this request: `r` units, and `t` "
        'seconds until it is full again, e.g. `"requests";r=37;t=1`.',
        "schema": {"type": "string"},
    },
}

_UNAUTHENTICATED = problem_response(
    "No API key, or not a live one (unknown, malformed or revoked).",
    example(
        401,
        "unauthenticated",
        "Unauthenticated",
        "this route needs an API key: Authorization: Bearer <key>",
    ),
    headers={
        "WWW-Authenticate": {
            "description": 'RFC 6750\'s challenge: `Bearer realm="inferflow"`, with '
            '`error="invalid_token"` for a key that is not a live one.',
            "schema": {"type": "string"},
        }
    },
)


def _forbidden(scope: str) -> dict[str, Any]:
    return problem_response(
        f"The key lacks the `{scope}` scope.",
        example(403, "forbidden", "Forbidden", f"this API key lacks the {scope!r} scope"),
    )


_RATE_LIMITED = example(
    429, "rate-limited", "Too many requests", 'Over the rate limit "requests": retry in 1 s.'
)


def _too_many(description: str, *examples: dict[str, Any]) -> dict[str, Any]:
    return problem_response(description, *examples, headers={**RETRY_AFTER, **RATE_LIMIT_HEADERS})


def guarded_by(
    scope: str, too_many: dict[str, Any] | None = None
) -> dict[int | str, dict[str, Any]]:
    """The answers of a route that needs a key with `scope` and counts against limits."""
    limited = too_many or _too_many(
        "Over one of the tenant's or the key's rate limits. Retry after Retry-After seconds.",
        _RATE_LIMITED,
    )
    return {401: _UNAUTHENTICATED, 403: _forbidden(scope), 429: limited}


SUBMIT.update(
    guarded_by(
        "submit",
        _too_many(
            "Over one of the tenant's or the key's rate limits, or the tenant has as many "
            "unfinished jobs as its cap (`max_queued`) allows: nothing was stored. Retry after "
            "Retry-After seconds.",
            _RATE_LIMITED,
            example(
                429,
                "queue-full",
                "Queue full",
                "tenant 'acme' has as many unfinished jobs as its cap allows",
            ),
        ),
    )
)
SUBMIT_BATCH.update(guarded_by("submit"))
READ_JOB.update(guarded_by("read"))

_ETAG = {
    "ETag": {
        "description": "A weak tag of the job's state (RFC 9110): it changes whenever the "
        "state does, and a terminal job's never changes. Send it back in `If-None-Match` to "
        "be answered 304 while the job is as you last saw it.",
        "schema": {"type": "string", "example": 'W/"3f2a9c0d1e4b5a6c"'},
    }
}
_POLL_AGAIN = {
    "Retry-After": {
        "description": "On a job that has not ended, read without `wait`: seconds until it "
        "is worth asking again (a hint; absent once the job is terminal). Or ask with `wait` "
        "and be answered when it ends.",
        "schema": {"type": "integer", "minimum": 1},
    }
}
# GET /v1/jobs/{job_id} alone: its conditional reads and polling hints.
POLL_JOB: dict[int | str, dict[str, Any]] = {
    **READ_JOB,
    200: {"headers": {**_ETAG, **_POLL_AGAIN}},
    304: {
        "description": "Not Modified: `If-None-Match` named the job's current tag (or was "
        "`*`). No body; the tag and, for a job that has not ended, Retry-After, as a 200 "
        "would have.",
        "headers": {**_ETAG, **_POLL_AGAIN},
    },
}

_ADMIN_INVALID = problem_response(
    "A parameter or the body is not valid.",
    example(
        422,
        "validation-error",
        "Invalid request",
        "body.tenant: String should match pattern '^[a-z0-9][a-z0-9_-]{0,62}$'",
        errors=[
            {
                "field": "body.tenant",
                "message": "String should match pattern '^[a-z0-9][a-z0-9_-]{0,62}$'",
                "type": "string_pattern_mismatch",
            }
        ],
    ),
    model=UnprocessableProblem,
)

ADMIN: dict[int | str, dict[str, Any]] = {
    **guarded_by("admin"),
    422: _ADMIN_INVALID,
    503: _postgres_unavailable("PostgreSQL did not answer."),
    **SERVER_ERROR,
}
ADMIN_WRITE: dict[int | str, dict[str, Any]] = {
    **ADMIN,
    400: problem_response(
        "The body is not UTF-8 JSON.",
        example(400, "malformed-json", "Malformed JSON", "The body is not valid JSON."),
    ),
    **UNSUPPORTED_MEDIA_TYPE,
}
ADMIN_KEY: dict[int | str, dict[str, Any]] = {
    **ADMIN,
    404: problem_response(
        "No key with this id.", example(404, "http-404", "Not Found", "no key key_0a1b2c3d4e5f")
    ),
}


# ---------------------------------------------------------------- cancels

_CANCEL_UNAVAILABLE = unavailable(
    "Redis or PostgreSQL did not answer; nothing may have been cancelled, and sending the cancel "
    "again is safe."
)

CANCEL_JOB: dict[int | str, dict[str, Any]] = {
    404: problem_response(
        "No job with this id was ever accepted for this key's tenant (or the id is not in the "
        "UUID format).",
        example(404, "http-404", "Not Found", f"no job {EXAMPLE_JOB_ID}"),
    ),
    409: problem_response(
        "The job had ended otherwise: `job_status` says how (succeeded or failed). Nothing was "
        "written.",
        example(
            409,
            "job-ended",
            "Job already ended",
            f"job {EXAMPLE_JOB_ID} is succeeded: only a queued or started job can be cancelled",
            job_status="succeeded",
        ),
    ),
    503: _CANCEL_UNAVAILABLE,
    **SERVER_ERROR,
    **guarded_by("cancel"),
}

CANCEL_BATCH: dict[int | str, dict[str, Any]] = {
    404: problem_response(
        "No batch with this id has jobs of this key's tenant.",
        example(404, "http-404", "Not Found", f"no batch {EXAMPLE_BATCH_ID}"),
    ),
    409: problem_response(
        "Every job of the batch had ended, and the batch was not cancelled: nothing to cancel.",
        example(
            409,
            "batch-ended",
            "Batch already ended",
            f"batch {EXAMPLE_BATCH_ID} is completed: every job of it has ended",
        ),
    ),
    503: _CANCEL_UNAVAILABLE,
    **SERVER_ERROR,
    **guarded_by("cancel"),
}


# ---------------------------------------------------------------- webhooks

WEBHOOK_SECRET: dict[int | str, dict[str, Any]] = {
    **guarded_by("submit"),
    503: _postgres_unavailable("PostgreSQL did not answer."),
    **SERVER_ERROR,
}
