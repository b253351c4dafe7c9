"""Batches as objects: /v1/batches (a JSON Lines file in) and /v1/batches/{batch_id} (its counts,
results as JSON Lines, and progress as Server-Sent Events)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from email.message import Message as MimeMessage
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from api import batches, batchupload, sse, submission
from api.auth import Principal
from api.batches import NDJSON, BatchBody, BatchFileAccepted, FileLine
from api.batchfile import MEDIA_TYPES
from api.deps import CancelAfterMs, IdempotencyKey, Reader, Services, ServicesDep, Submitter
from api.errors import RefusedRequestError
from api.openapi import RETRY_AFTER, SERVER_ERROR, example, problem_response
from api.params import BatchId
from api.problems import problem
from api.responses import (
    CANCEL_AFTER_PARAMETER,
    IDEMPOTENCY_KEY_PARAMETER,
    RATE_LIMIT_HEADERS,
    guarded_by,
    unavailable,
)
from api.schemas import UnprocessableProblem, WebhookUrl
from api.webhooks import admit_webhook
from domain.webhooks import DEFAULT_FILTER, format_filter
from runtime.webhookurls import MAX_URL_CHARS

log = logging.getLogger(__name__)

FILE_PATH = "/v1/batches"
BATCH_PATH = "/v1/batches/{batch_id}"
# Results read per query: a chunk of the stream, never the whole batch at once.

router = APIRouter()

# ---------------------------------------------------------------- what the routes answer

_REDIS_DOWN = unavailable("Redis or PostgreSQL did not answer.")

_BAD_LINES_EXAMPLE = {
    "batch_id": batches.EXAMPLE_BATCH_ID,
    "lines": 1,
    "accepted": 0,
    "replayed": 0,
    "rejected": 1,
    "bad_lines": [
        {
            "line": 1,
            "custom_id": None,
            "error": {
                "type": "urn:inferflow:problem:malformed-json",
                "title": "Malformed JSON",
                "detail": "line 1 is not valid JSON: Expecting value: line 1 column 1 (char 0)",
            },
        }
    ],
    "bad_lines_omitted": 0,
}

SUBMIT_FILE_PARAMETERS = [IDEMPOTENCY_KEY_PARAMETER, CANCEL_AFTER_PARAMETER]

FILE_REQUEST_BODY = {
    "required": True,
    "description": "One job per line, each a JSON object (BatchFileLine); blank lines are "
    "skipped. `application/jsonl` and `application/x-jsonlines` are taken too.",
    "content": {
        NDJSON: {
            "schema": {"type": "string", "description": "JSON Lines of BatchFileLine objects."},
            "x-line-schema": batches.line_schema(),
            "example": '{"custom_id": "msg-1", "text": "limited time offer, click now"}\n'
            '{"custom_id": "msg-2", "text": "see you at seven", "cancel_after": "1h"}\n',
        }
    },
}

SUBMIT_FILE: dict[int | str, dict[str, Any]] = {
    202: {
        "headers": {
            "Location": {
                "description": "Where to read the batch: /v1/batches/{batch_id}.",
                "required": True,
                "schema": {"type": "string"},
            },
            submission.REPLAY_HEADER: {
                "description": "Present, and `true`, when the file came with an "
                "Idempotency-Key and every job of it was there already (no line made a new "
                "one).",
                "required": False,
                "schema": {"type": "string", "enum": ["true"]},
            },
        }
    },
    400: problem_response(
        "The Idempotency-Key or Cancel-After header is invalid.",
        example(
            400,
            "invalid-idempotency-key",
            "Invalid Idempotency-Key",
            "Idempotency-Key must be 1 to 255 printable ASCII characters, sent once.",
        ),
    ),
    413: problem_response(
        "The file has more than BATCH_FILE_MAX_LINES lines that are not blank, or more than "
        "BATCH_FILE_MAX_BYTES bytes. The file is read as it arrives, so the lines before the "
        "limit ARE accepted: the problem carries the batch and its counts as the 202 would, "
        "and `first_unread_line`. A body whose Content-Length is over BATCH_FILE_MAX_BYTES is "
        "refused before it is read (content-too-large).",
        example(
            413,
            "file-too-large",
            "File too large",
            "The file is longer than its limit of lines that are not blank: it was read up to "
            "line 100000, and the jobs of its lines before are accepted as batch "
            f"{batches.EXAMPLE_BATCH_ID}; nothing from line 100001 on was read.",
            first_unread_line=100001,
            **{
                **_BAD_LINES_EXAMPLE,
                "lines": 100000,
                "accepted": 100000,
                "rejected": 0,
                "bad_lines": [],
            },
        ),
    ),
    415: problem_response(
        f"The body is not declared as {NDJSON} (or application/jsonl) in UTF-8.",
        example(
            415,
            "unsupported-media-type",
            "Unsupported media type",
            f"Send the file as {NDJSON} (UTF-8); got application/json.",
        ),
    ),
    422: problem_response(
        "No line of the file is a valid job (or the file has none): the bad lines as the 202 "
        "would list them.",
        example(
            422,
            "no-valid-lines",
            "No valid line",
            "none of the file's 1 lines is a valid job",
            **_BAD_LINES_EXAMPLE,
        ),
        model=UnprocessableProblem,
    ),
    503: _REDIS_DOWN,
    **SERVER_ERROR,
    **guarded_by(
        "submit",
        problem_response(
            "Every line was refused by the tenant's cap on unfinished jobs (queue-full); or a "
            "chunk of the file is more jobs than a rate limit ever lets through at once "
            "(rate-limited, without Retry-After: a chunk is at most the tenant's jobs burst, so "
            "only a limit changed while the file is read does this). A chunk the limits refuse "
            "for now is not a 429: the file waits until they let it through.",
            example(
                429,
                "queue-full",
                "Queue full",
                "the tenant has as many unfinished jobs as its cap allows; retry when some finish",
            ),
            headers={**RETRY_AFTER, **RATE_LIMIT_HEADERS},
        ),
    ),
}

_NOT_FOUND = problem_response(
    "No batch with this id was ever accepted for the caller's tenant (another tenant's batch "
    "looks the same), or the id is not a UUID.",
    example(404, "http-404", "Not Found", f"no batch {batches.EXAMPLE_BATCH_ID}"),
)

READ_BATCH: dict[int | str, dict[str, Any]] = {
    404: _NOT_FOUND,
    503: _REDIS_DOWN,
    **SERVER_ERROR,
    **guarded_by("read"),
}

READ_RESULTS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON Lines: one ResultLine per terminal job.",
        "content": {
            NDJSON: {
                "schema": {"type": "string", "description": "JSON Lines of ResultLine objects."},
                "x-line-schema": batches.ResultLine.model_json_schema(),
                "example": batches.EXAMPLE_RESULT_LINE + "\n",
            }
        },
    },
    404: _NOT_FOUND,
    503: _REDIS_DOWN,
    **SERVER_ERROR,
    **guarded_by("read"),
}


@router.post(
    FILE_PATH,
    status_code=202,
    response_model=BatchFileAccepted,
    summary="Submit a file of jobs (JSON Lines) as a batch",
    description="The body is a JSON Lines file (`application/x-ndjson`), one job per line: "
    '`{"custom_id", "text", "model_version"?, "cancel_after"?}`, custom_id unique '
    "within the file. It is read as it arrives and accepted a chunk of BATCH_MAX_ITEMS lines at "
    "a time (never held whole), each chunk charged to the rate limits as a batch of its jobs "
    "would be (a chunk the limits refuse for now waits). Each line is judged on its own: a bad "
    "line (not JSON, invalid, a repeated custom_id, an unknown model version) is listed by its "
    "number with a problem detail and does not stop the others. With an Idempotency-Key, the "
    "batch id is the key's and each line's job is bound to the key and its custom_id: the same "
    "file sent again creates no job (its lines count as replayed), and lines new to it join "
    "the batch. Blank lines are skipped. A line may be MAX_BODY_BYTES long; the file "
    "BATCH_FILE_MAX_LINES lines (not blank) and BATCH_FILE_MAX_BYTES bytes. With `webhook`, "
    "the batch is sent there once every job of it is terminal, as for POST /v1/inference/batch.",
    response_description="The batch, its lines counted, and the bad ones.",
    responses=SUBMIT_FILE,
    openapi_extra={"parameters": SUBMIT_FILE_PARAMETERS, "requestBody": FILE_REQUEST_BODY},
)
async def submit_file(
    request: Request,
    svc: ServicesDep,
    principal: Submitter,
    key: IdempotencyKey,
    cancel_after_ms: CancelAfterMs,
    webhook: BatchWebhook = None,
    webhook_events_filter: BatchWebhookFilter = None,
) -> Response:
    _require_json_lines(request.headers.get("content-type"))
    if webhook_events_filter is not None and webhook is None:
        raise RefusedRequestError(
            "validation-error", "Invalid request", "webhook_events_filter is given only with "
            "webhook", status=422,
        )  # fmt: skip
    if webhook is not None:
        # Before a line is read: a refused URL refuses the file, as a batch's body would.
        await admit_webhook(svc, webhook)
    tenant = principal.tenant
    context = submission.BatchContext(
        batch_id=submission.keyed_batch_id(tenant, key) if key else submission.new_batch_id(),
        tenant=tenant,
        traceparent=request.headers.get("traceparent") or "",
        cancel_after_ms=cancel_after_ms,
        idempotency_key=key,
        item_model=FileLine,
        item_path="line",
    )
    try:
        outcome = await batchupload.accept_file(svc, request, principal, context)
    except ClientDisconnect:
        log.info("batch %s: the client went away while sending its file", context.batch_id)
        return Response(status_code=400)  # to no one
    if webhook is not None and outcome.jobs:
        triggers = format_filter(webhook_events_filter or DEFAULT_FILTER)
        await submission.watch_batch(svc, context, webhook, triggers)
    return _answer(outcome, key)


# The file is the body, so a batch's own webhook comes as a query parameter.
BatchWebhook = Annotated[
    WebhookUrl | None,
    Query(
        max_length=MAX_URL_CHARS,
        description="An http(s) URL to POST the batch to once every one of its jobs is terminal "
        "(the batch as GET /v1/batches/{batch_id} answers it), signed as a job's webhook is; "
        "refused (422 webhook-refused) by the rules of a job's `webhook`. Each line may name a "
        "webhook of its own besides.",
        examples=["https://example.com/hooks/batches"],
    ),
]
BatchWebhookFilter = Annotated[
    list[Literal["started", "completed"]] | None,
    Query(
        min_length=1,
        description="When the batch's webhook is sent (repeat the parameter for both): "
        "`started` (a job of it has begun, or ended) and `completed` (every job of it is "
        "terminal); `completed` when omitted. Only with `webhook`.",
    ),
]


def _require_json_lines(content_type: str | None) -> None:
    mime = MimeMessage()
    mime["content-type"] = content_type or ""
    charset = str(mime.get_param("charset") or "utf-8").lower()
    if content_type and mime.get_content_type() in MEDIA_TYPES and charset in ("utf-8", "utf8"):
        return
    raise RefusedRequestError(
        "unsupported-media-type",
        "Unsupported media type",
        f"Send the file as {NDJSON} (UTF-8); got {content_type or 'no Content-Type'}.",
        status=415,
    )


def _answer(outcome: batchupload.FileOutcome, key: str | None) -> Response:
    body = outcome.body()
    if outcome.overflow is not None:
        over = outcome.overflow
        limit = "lines that are not blank" if over.limit == "lines" else "bytes"
        detail = (
            f"The file is longer than its limit of {limit}: it was read up to line "
            f"{over.line - 1}, and the jobs of its lines before are accepted as batch "
            f"{outcome.batch_id}; nothing from line {over.line} on was read."
        )
        return problem(
            413, "file-too-large", "File too large", detail, first_unread_line=over.line, **body
        )
    if not outcome.jobs:
        if outcome.lines and outcome.queue_full == outcome.counts["rejected"]:
            detail = (
                "the tenant has as many unfinished jobs as its cap allows; retry when some finish"
            )
            return problem(
                429, "queue-full", "Queue full", detail, headers={"Retry-After": "1"}, **body
            )
        detail = (
            f"none of the file's {outcome.lines} lines is a valid job"
            if outcome.lines
            else "the file has no lines; send one job per line"
        )
        return problem(422, "no-valid-lines", "No valid line", detail, **body)
    headers = {"Location": f"{FILE_PATH}/{outcome.batch_id}"}
    if key and not outcome.counts["accepted"]:
        headers[submission.REPLAY_HEADER] = "true"
    content = json.dumps(body, separators=(",", ":"))
    return Response(content, status_code=202, media_type="application/json", headers=headers)


async def _found(svc: Services, principal: Principal, batch_id: str) -> batches.Found:
    found = await batches.find(svc, principal, batch_id)
    if found is None:
        raise HTTPException(404, f"no batch {batch_id}")
    return found


@router.get(
    BATCH_PATH,
    response_model=BatchBody,
    summary="Read a batch: its jobs counted by status",
    description="The batch's jobs counted by status (jobs accepted that the projection does "
    "not hold yet count as queued), when it was created, its status (in_progress, cancelling, "
    "completed, cancelled) and, once every job is terminal, when it finished. Another "
    "tenant's batch is 404, exactly like an id that does not exist.",
    response_description="The batch.",
    responses=READ_BATCH,
)
async def get_batch(batch_id: BatchId, svc: ServicesDep, principal: Reader) -> BatchBody:
    return (await _found(svc, principal, batch_id)).body


@router.get(
    f"{BATCH_PATH}/results",
    summary="Read a batch's results (JSON Lines)",
    description="The batch's terminal jobs as JSON Lines (`application/x-ndjson`), one "
    "ResultLine per job: its custom_id, job_id, status and its result, error or "
    "cancel_reason. Readable while the batch runs: it then lists the jobs terminal so far. The "
    "lines come in the order the jobs were accepted (by chunk, not strictly the file's); "
    "match them by custom_id. Streamed, a thousand jobs per read of the database: a "
    "stream cut short (the connection closes without the end of the chunked body) is an error, "
    "not the end of the results.",
    response_description="One line per terminal job.",
    responses=READ_RESULTS,
)
async def get_results(batch_id: BatchId, svc: ServicesDep, principal: Reader) -> Response:
    found = await _found(svc, principal, batch_id)
    return StreamingResponse(await batches.results(svc, found), media_type=NDJSON)


_PROGRESS_EXAMPLE = (
    "event: progress\n"
    'data: {"batch_id":"7d1c1c55-58d9-4d0b-9a52-4b8c8f0b6f0e","status":"in_progress",'
    '"counts":{"total":3,"queued":1,"started":1,"succeeded":1,"failed":0,"cancelled":0},...}\n'
    "id: in_progress:3:1:1:1:0:0\n\n"
    "event: finished\n"
    'data: {"batch_id":"7d1c1c55-58d9-4d0b-9a52-4b8c8f0b6f0e","status":"completed",'
    '"counts":{"total":3,"queued":0,"started":0,"succeeded":3,"failed":0,"cancelled":0},...}\n'
    "id: completed:3:0:0:3:0:0\n\n"
)

READ_PROGRESS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-Sent Events: a `progress` event (data: the batch, as GET "
        "/v1/batches/{batch_id} answers it) whenever its status or counts change, read at most "
        f"every {batches.PROGRESS_POLL_S:g} s, then one `finished` event once every job is "
        "terminal, and the end of the stream. Each event's id is the state it shows: resuming "
        "with Last-Event-ID sends the state only when it has changed since. A `: heartbeat` "
        f"comment after {sse.HEARTBEAT_S:g} s of silence; the stream ends after "
        f"{sse.LIFE_S:g} s at the most (reconnect then with Last-Event-ID).",
        "content": {sse.MEDIA_TYPE: {"schema": {"type": "string"}, "example": _PROGRESS_EXAMPLE}},
    },
    204: {
        "description": "Last-Event-ID is the id of the batch's `finished` event: there is "
        "nothing more to send (an EventSource stops reconnecting)."
    },
    404: _NOT_FOUND,
    406: problem_response(
        "The request does not accept text/event-stream: this resource is only an event stream.",
        example(
            406,
            "not-acceptable",
            "Not acceptable",
            "GET /v1/batches/{batch_id}/events is an event stream: send Accept: text/event-stream.",
        ),
    ),
    503: _REDIS_DOWN,
    **SERVER_ERROR,
    **guarded_by("read"),
}


@router.get(
    f"{BATCH_PATH}/events",
    summary="Follow a batch's progress (Server-Sent Events)",
    description="The batch's counts and status as Server-Sent Events (`Accept: "
    "text/event-stream`) as they change, until every job is terminal: then a `finished` "
    "event and the end of the stream.",
    response_description="The batch's progress, live.",
    responses=READ_PROGRESS,
)
async def get_batch_events(
    batch_id: BatchId,
    request: Request,
    svc: ServicesDep,
    principal: Reader,
    last_event_id: Annotated[
        str | None,
        Header(
            alias=sse.LAST_EVENT_ID,
            description="The id of the last event received: the stream sends the batch's "
            "state only once it differs from that one. An EventSource sends it when it "
            "reconnects.",
        ),
    ] = None,
) -> Response:
    if not sse.wanted(request.headers.get("accept")):
        raise RefusedRequestError(
            "not-acceptable",
            "Not acceptable",
            "GET /v1/batches/{batch_id}/events is an event stream: send Accept: text/event-stream.",
            status=406,
        )
    found = await _found(svc, principal, batch_id)
    after = sse.last_event_id(last_event_id)
    if found.body.finished and batches.progress_id(found.body) == after:
        return Response(status_code=204)
    return sse.response(_progress_frames(svc, found, after))


async def _progress_frames(
    svc: Services, found: batches.Found, after: str | None
) -> AsyncIterator[bytes]:
    async for name, event_id, body in batches.progress(svc, found, after):
        yield sse.event(name, body.model_dump_json(), id=event_id)
