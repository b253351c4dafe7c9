"""A webhook's body: the job as GET /v1/jobs/{id} answers it, folded from the job's events by
the domain (domain.job), so a delivery waits for no projection. The same fields, in the same
form, as api.schemas.JobBody renders them (times in ISO 8601 UTC with a `Z`); a test holds the
two equal."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from domain.errors import InferFlowError
from domain.events import decode
from domain.job import JobState, fold
from eventlog.entries import Entry
from eventlog.positions import position


def _time(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def state_of(job_id: str, entries: Sequence[Entry]) -> JobState | None:
    """The job after its entries, in log order (entries that do not decode are skipped)."""
    events = []
    for _entry_id, fields in sorted(entries, key=lambda entry: position(entry[0])):
        try:
            events.append(decode(fields))
        except InferFlowError:
            continue
    return fold(event for event in events if event.job_id == job_id).get(job_id)


def document(state: JobState) -> dict[str, Any]:
    result = state.result
    return {
        "job_id": state.job_id,
        "status": state.status.value,
        "model_version": state.model_version,
        "result": {
            "label": result.label,
            "score": result.score,
            "model_version": result.model_version,
            "probabilities": result.probabilities,
        }
        if result
        else None,
        "error": state.error,
        "error_type": state.error_type,
        "retry_count": state.retry_count,
        "attempts": state.attempts,
        "created_at": _time(state.created_at),
        "started_at": _time(state.started_at),
        "finished_at": _time(state.finished_at),
        "updated_at": _time(state.updated_at),
        "cancel_reason": state.cancel_reason,
        "batch_id": state.batch_id,
        "custom_id": state.custom_id,
        "deadline": _time(state.deadline),
    }


def render(state: JobState) -> str:
    return json.dumps(document(state), separators=(",", ":"), ensure_ascii=False)
