"""Mapping between the domain's JobState and rows of the `jobs` table."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from domain.job import JobResult, JobState, JobStatus
from domain.lanes import INTERACTIVE

# PostgreSQL can hold U+0000 neither in text nor in jsonb, and the log can (see
# readmodel.archive). A NUL in a row's text (an error message quoting its input, say) would
# fail its batch on every retry and stop the projector for good, so it is stored as U+FFFD.
NUL = "\x00"
REPLACEMENT = "\ufffd"


def storable(text: str | None) -> str | None:
    return text.replace(NUL, REPLACEMENT) if text and NUL in text else text


def _storable_keys(values: dict[str, float]) -> dict[str, float]:
    if not any(NUL in key for key in values):
        return values
    return {key.replace(NUL, REPLACEMENT): value for key, value in values.items()}


def to_row(state: JobState, last_entry_id: str) -> dict[str, Any]:
    result = state.result
    return {
        "job_id": state.job_id,
        "status": state.status.value,
        "model_version": storable(state.model_version),
        "result_label": storable(result.label) if result else None,
        "result_score": result.score if result else None,
        "result_probabilities": _storable_keys(result.probabilities) if result else None,
        "result_model_version": storable(result.model_version) if result else None,
        "error_type": storable(state.error_type),
        "error": storable(state.error),
        "retry_count": state.retry_count,
        "attempts": state.attempts,
        "created_at": state.created_at,
        "started_at": state.started_at,
        "finished_at": state.finished_at,
        "updated_at": state.updated_at,
        "last_entry_id": last_entry_id,
        "tenant": state.tenant,
        "lane": storable(state.lane),
        "batch_id": storable(state.batch_id),
        "custom_id": storable(state.custom_id),
        "deadline": state.deadline,
        "cancel_reason": storable(state.cancel_reason),
    }


def to_state(row: Mapping[Any, Any]) -> JobState:
    result = None
    if row["result_label"] is not None:
        result = JobResult(
            label=row["result_label"],
            score=row["result_score"],
            probabilities=dict(row["result_probabilities"] or {}),
            model_version=row["result_model_version"],
        )
    return JobState(
        job_id=str(row["job_id"]),
        status=JobStatus(row["status"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        model_version=row["model_version"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        retry_count=row["retry_count"],
        attempts=row["attempts"],
        result=result,
        error_type=row["error_type"],
        error=row["error"],
        tenant=row["tenant"],
        # Announced rows of a projector from before lanes have none: those jobs were all
        # interactive.
        lane=row.get("lane") or INTERACTIVE,
        batch_id=row.get("batch_id"),
        custom_id=row.get("custom_id"),
        deadline=row.get("deadline"),
        cancel_reason=row.get("cancel_reason"),
    )


TIMESTAMPS = ("created_at", "started_at", "finished_at", "updated_at", "deadline")


def json_default(value: Any) -> str:
    """`json.dumps`'s `default` for rows: their only values JSON has no type for are times."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} in a projected row")


def to_json(value: Any) -> str:
    """A row, or a list of rows, as JSON."""
    return json.dumps(value, default=json_default)


def from_json(raw: str) -> dict[str, Any]:
    """The row `to_json` wrote, its times parsed back."""
    row = json.loads(raw)
    if not isinstance(row, dict):
        raise ValueError("a row is a JSON object")
    for key in TIMESTAMPS:
        if row.get(key) is not None:
            row[key] = datetime.fromisoformat(row[key])
    return row
