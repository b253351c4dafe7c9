"""Why a job was cancelled: the `reason` of its JobCancelled event.

A cancelled job ended without a result, and `cancelled` is as terminal as `succeeded` and
`failed`: exactly one of the three is a job's end.

- `requested`: its tenant asked (POST /v1/jobs/{id}/cancel), queued or running.
- `batch_cancelled`: its batch was cancelled (POST /v1/batches/{id}/cancel).
- `expired`: its deadline (Cancel-After) passed before any consumer started it: it never ran.
- `timed_out`: its deadline passed while it ran; whatever the run produced is dropped.
"""

from __future__ import annotations

from enum import StrEnum


class CancelReason(StrEnum):
    REQUESTED = "requested"
    BATCH_CANCELLED = "batch_cancelled"
    EXPIRED = "expired"
    TIMED_OUT = "timed_out"
