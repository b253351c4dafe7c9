"""POST /v1/inference/batch: many jobs in one request, judged item by item.

Each item is judged on its own, as POST /v1/inference would judge it (api.submission); the
valid ones are accepted together by the BATCH_SUBMIT script. The answer lists every item in the
request's order. A batch of 1000 must cost tens of microseconds per item, not hundreds.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError

from api import submission
from api.deps import CancelAfterMs, ServicesDep, Submitter, charge
from api.limits import JsonBodyRoute
from api.responses import CANCEL_AFTER_PARAMETER, SUBMIT_BATCH
from api.schemas import BatchAccepted, BatchRequest
from api.webhooks import admit_webhook

PATH = "/v1/inference/batch"

# The JSON gate runs before FastAPI parses the body: 415 and 400 come before any 422.
router = APIRouter(route_class=JsonBodyRoute)


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
    "The valid items are appended in one Redis command per partition of the log they are spread "
    "over. A key repeated within a batch "
    "replays the job of its first item. The body limit is BATCH_MAX_BODY_BYTES (default 8 MiB).",
    response_description="Every item's outcome, in the request's order.",
    responses=SUBMIT_BATCH,
    openapi_extra={"parameters": [CANCEL_AFTER_PARAMETER]},
)
async def submit_batch(
    body: BatchRequest,
    request: Request,
    svc: ServicesDep,
    principal: Submitter,
    cancel_after_ms: CancelAfterMs,
) -> Response:
    _require_at_most(body.items, svc.settings.batch_max_items)
    # Every item counts, the ones that will be rejected too: judging them is the work.
    await charge(svc, request, principal, jobs=len(body.items))
    if body.webhook is not None:
        await admit_webhook(svc, body.webhook)
    context = submission.BatchContext(
        batch_id=submission.new_batch_id(),
        tenant=principal.tenant,
        traceparent=request.headers.get("traceparent") or "",
        cancel_after_ms=cancel_after_ms,
    )
    counts, answers = await submission.accept_batch(svc, context, body.items)
    if body.webhook is not None and counts["accepted"]:
        await submission.watch_batch(svc, context, body.webhook, body.webhook_filter)
    return _render(context.batch_id, counts, answers)


def _require_at_most(items: Sequence[Any], limit: int) -> None:
    # The limit is a setting, so the envelope model cannot carry it; same 422 as if it did.
    if len(items) > limit:
        message = f"List should have at most {limit} items, not {len(items)}"
        error = {"loc": ("body", "items"), "msg": message, "type": "too_long"}
        raise RequestValidationError([error])


def _render(batch_id: str, counts: dict[str, int], answers: list[submission.Answer]) -> Response:
    # ASCII escapes: an error may quote hostile input (a field named "\ud800"); skipping the
    # response model's validation saves a second pass over every item.
    body = {"batch_id": batch_id, **counts, "items": answers}
    content = json.dumps(body, separators=(",", ":"))
    return Response(content, status_code=202, media_type="application/json")
