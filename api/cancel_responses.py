"""What the OpenAPI description says the cancel routes answer (POST /v1/jobs/{job_id}/cancel and
POST /v1/batches/{batch_id}/cancel)."""

from __future__ import annotations

from typing import Any

from api.batches import EXAMPLE_BATCH_ID
from api.openapi import RETRY_AFTER, SERVER_ERROR, example, problem_response
from api.responses import guarded_by
from api.schemas import EXAMPLE_JOB_ID

_UNAVAILABLE = problem_response(
    "Redis or PostgreSQL did not answer; nothing may have been cancelled, and sending the cancel "
    "again is safe. Retry after Retry-After seconds.",
    example(
        503,
        "dependency-unavailable",
        "Service unavailable",
        "redis unavailable: Connection refused",
    ),
    headers=RETRY_AFTER,
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
    503: _UNAVAILABLE,
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
    503: _UNAVAILABLE,
    **SERVER_ERROR,
    **guarded_by("cancel"),
}
