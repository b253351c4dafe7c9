"""Request and response bodies of the HTTP API, and the RFC 9457 problem details."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.job import JobStatus

MAX_TEXT_CHARS = 5000
EXAMPLE_JOB_ID = "01a2222c-2f5b-772f-b08b-c988cdc0bb63"


class InferenceRequest(BaseModel):
    # Unknown fields are refused rather than ignored: a typo like "model_verison" would
    # otherwise silently run the default model.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"text": "limited time offer, click now"}]},
    )

    text: str = Field(
        description=f"Text to classify: 1 to {MAX_TEXT_CHARS} characters after surrounding white "
        "space is stripped (it is stored stripped)."
    )
    model_version: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Model to use; the server's default when omitted or null. Must be a "
        "version the registry knows, else 422 unknown-model-version.",
    )

    @field_validator("text")
    @classmethod
    def _strip_and_bound(cls, text: str) -> str:
        stripped = text.strip()
        if not stripped:
            raise ValueError("text must not be blank")
        if len(stripped) > MAX_TEXT_CHARS:
            raise ValueError(f"text must be at most {MAX_TEXT_CHARS} characters")
        if "\x00" in stripped:
            # PostgreSQL cannot store NUL in text or JSON: refused here, not failed later.
            raise ValueError("text must not contain NUL (U+0000) characters")
        if has_lone_surrogate(stripped):
            # JSON escapes such as "\ud800" decode to strings that cannot be stored as UTF-8.
            raise ValueError("text must not contain unpaired surrogates")
        return stripped


def has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class JobAccepted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"job_id": EXAMPLE_JOB_ID, "status": "queued"}]}
    )

    job_id: str = Field(description="UUIDv7 of the job, in canonical lowercase form.")
    status: Literal["queued"] = "queued"


class JobResultBody(BaseModel):
    label: str
    score: float = Field(description="Probability of the label.")
    model_version: str
    probabilities: dict[str, float] = Field(description="Probability of every class.")


class JobBody(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "job_id": EXAMPLE_JOB_ID,
                    "status": "succeeded",
                    "model_version": "spam-tfidf-lr-v1",
                    "result": {
                        "label": "spam",
                        "score": 0.9778,
                        "model_version": "spam-tfidf-lr-v1",
                        "probabilities": {"ham": 0.0222, "spam": 0.9778},
                    },
                    "error": None,
                    "error_type": None,
                    "retry_count": 0,
                    "attempts": 1,
                    "created_at": "2026-11-28T12:40:50.779284Z",
                    "started_at": "2026-11-28T12:40:50.784131Z",
                    "finished_at": "2026-11-28T12:40:51.093413Z",
                    "updated_at": "2026-11-28T12:40:51.093413Z",
                }
            ]
        }
    )

    job_id: str
    status: JobStatus
    model_version: str | None
    result: JobResultBody | None
    error: str | None = Field(description="Why the job failed.")
    error_type: str | None = Field(description="Class of the failure.")
    retry_count: int = Field(description="JobRetrying events seen.")
    attempts: int = Field(description="Attempts made.")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


class HealthBody(BaseModel):
    status: Literal["ok"] = "ok"


class DependencyCheck(BaseModel):
    status: Literal["ok", "down", "behind"]
    reason: str | None = Field(default=None, description="Why a dependency is down.")
    lag_entries: int | None = Field(default=None, description="Projector only.")
    lag_seconds: float | None = Field(default=None, description="Projector only.")
    checkpoint: str | None = Field(default=None, description="Projector only.")


class ReadyBody(BaseModel):
    status: Literal["ready"] = "ready"
    checks: dict[str, DependencyCheck]


class ProblemDetails(BaseModel):
    """An RFC 9457 problem detail, served as application/problem+json."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        description="URI naming the problem type: urn:inferflow:problem:<name>.",
        examples=["urn:inferflow:problem:http-404"],
    )
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(ge=400, le=599, description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request.")


class FieldError(BaseModel):
    field: str = Field(description="Path of the offending value, e.g. body.text.")
    message: str
    type: str = Field(description="Machine-readable error code, e.g. string_type.")


class UnprocessableProblem(ProblemDetails):
    """422: a body that is JSON but not a valid request, or an Idempotency-Key reused."""

    errors: list[FieldError] = Field(
        default_factory=list, description="validation-error only: every invalid field."
    )
    available: list[str] = Field(
        default_factory=list, description="unknown-model-version only: the versions known."
    )


class NotReadyProblem(ProblemDetails):
    """503 from /ready: which dependency is down or behind."""

    checks: dict[str, DependencyCheck]
