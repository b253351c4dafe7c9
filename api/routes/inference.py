"""POST /v1/inference: accept a job onto the event log."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response

from api import metrics
from api.deps import Services, services
from api.problems import BadRequestError
from api.schemas import InferenceRequest, JobAccepted
from api.store import utcnow
from domain.errors import IdempotencyKeyReusedError
from domain.events import JobRequested
from domain.ids import new_job_id

router = APIRouter()

_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")
REPLAY_HEADER = "Idempotent-Replayed"


def _fingerprint(text: str, model_version: str) -> str:
    canonical = json.dumps({"model_version": model_version, "text": text}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _check_key(key: str | None) -> None:
    if key is not None and not _KEY.fullmatch(key):
        raise BadRequestError(
            "invalid-idempotency-key",
            "Invalid Idempotency-Key",
            "Idempotency-Key must be 1 to 255 printable ASCII characters.",
        )


@router.post("/v1/inference", status_code=202, response_model=JobAccepted)
async def submit(
    body: InferenceRequest,
    response: Response,
    svc: Annotated[Services, Depends(services)],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> JobAccepted:
    _check_key(idempotency_key)
    version = body.model_version or svc.settings.default_model_version
    svc.require_model(version)
    event = JobRequested(
        job_id=new_job_id(), occurred_at=utcnow(), text=body.text, model_version=version
    )
    fingerprint = _fingerprint(body.text, version)
    submission = await svc.log.submit(
        event,
        idempotency_key,
        fingerprint,
        svc.settings.job_index_ttl_s,
        svc.settings.idempotency_ttl_s,
    )
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
    return JobAccepted(job_id=submission.job_id)
