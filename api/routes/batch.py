"""POST /v1/inference/batch: many jobs in one request and one Redis command, judged item by item.

Each item is validated on its own, as POST /v1/inference would validate it (api/batch_items.py);
the valid ones are accepted together by BATCH_SUBMIT_SCRIPT. The answer lists every item in the
request's order. A batch of 1000 must cost tens of microseconds per item, not hundreds.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError

from api import batch_items, metrics
from api.batch_schemas import BatchAccepted, BatchRequest
from api.batchstore import BatchLogClient
from api.deps import Services, services
from api.limits import JsonBodyRoute, set_path_limit
from api.openapi import RETRY_AFTER, SERVER_ERROR, UNSUPPORTED_MEDIA_TYPE, example, problem_response
from api.schemas import UnprocessableProblem
from infra import spans, tracing

PATH = "/v1/inference/batch"


@asynccontextmanager
async def _start(app: FastAPI) -> AsyncIterator[None]:
    """Runs inside the app's lifespan, once its services exist: the batch's own Redis script
    and its larger body limit come from the same settings."""
    svc: Services = app.state.services
    settings = svc.settings
    timeout_s = settings.dependency_timeout_ms / 1000
    app.state.batch_log = BatchLogClient(svc.redis, settings.names, timeout_s)
    set_path_limit(app, PATH, settings.batch_max_body_bytes)
    yield


# The JSON gate runs before FastAPI parses the body: 415 and 400 come before any 422.
router = APIRouter(route_class=JsonBodyRoute, lifespan=_start)


async def batch_log(request: Request) -> BatchLogClient:
    return request.app.state.batch_log  # type: ignore[no-any-return]


RESPONSES: dict[int | str, dict[str, Any]] = {
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
    503: problem_response(
        "Redis did not answer; no job of the batch was stored. Retry after Retry-After seconds.",
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


@router.post(
    PATH,
    status_code=202,
    response_model=BatchAccepted,
    summary="Submit many texts for classification",
    description="Accepts up to BATCH_MAX_ITEMS (default 1000) jobs at once, each item as the "
    "body of POST /v1/inference plus an optional `custom_id` (echoed back) and "
    "`idempotency_key` (the Idempotency-Key header's rules, and the same keys). Each item is "
    "judged on its own: an invalid item, an unknown model version or a key reused with another "
    "text is rejected in the answer with a problem detail, and the others are still accepted. "
    "The valid items are appended in one Redis command, in order. A key repeated within a batch "
    "replays the job of its first item. The body limit is BATCH_MAX_BODY_BYTES (default 8 MiB).",
    response_description="Every item's outcome, in the request's order.",
    responses=RESPONSES,
)
async def submit_batch(
    body: BatchRequest,
    request: Request,
    svc: Annotated[Services, Depends(services)],
    log: Annotated[BatchLogClient, Depends(batch_log)],
) -> Response:
    _require_at_most(body.items, svc.settings.batch_max_items)
    header = request.headers.get("traceparent") or ""
    attributes: dict[str, spans.AttributeValue] = {"inferflow.batch_size": len(body.items)}
    with spans.span("inferflow.submit_batch", header, **attributes) as current:
        # One trace for the request: with spans on, every job's work hangs under this span.
        traceparent = current.traceparent or tracing.accept(header)
        answers, pending = batch_items.judge(body.items, svc, traceparent)
        settings = svc.settings
        submissions = await log.submit(
            [entry for _, entry in pending], settings.job_index_ttl_s, settings.idempotency_ttl_s
        )
        batch_items.settle(pending, submissions)
        counts = batch_items.count(answers)
        current.set(**{f"inferflow.{status}": n for status, n in counts.items()})
    metrics.JOBS_SUBMITTED.inc(counts["accepted"])
    metrics.IDEMPOTENT_REPLAYS.inc(counts["replayed"])
    return _render(counts, answers)


def _require_at_most(items: Sequence[Any], limit: int) -> None:
    # The limit is a setting, so the envelope model cannot carry it; same 422 as if it did.
    if len(items) > limit:
        message = f"List should have at most {limit} items, not {len(items)}"
        error = {"loc": ("body", "items"), "msg": message, "type": "too_long"}
        raise RequestValidationError([error])


def _render(counts: dict[str, int], answers: list[batch_items.Answer]) -> Response:
    # ASCII escapes: an error may quote hostile input (a field named "\ud800"); skipping the
    # response model's validation saves a second pass over every item.
    content = json.dumps({**counts, "items": answers}, separators=(",", ":"))
    return Response(content, status_code=202, media_type="application/json")
