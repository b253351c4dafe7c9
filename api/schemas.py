"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_TEXT_CHARS = 5000


class InferenceRequest(BaseModel):
    # Unknown fields are refused rather than ignored: a typo like "model_verison" would
    # otherwise silently run the default model.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"text": "limited time offer, click now"}]},
    )

    text: str = Field(description=f"Text to classify, 1..{MAX_TEXT_CHARS} characters after strip.")
    model_version: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Model to use; the server's default when omitted.",
    )

    @field_validator("text")
    @classmethod
    def _strip_and_bound(cls, text: str) -> str:
        stripped = text.strip()
        if not stripped:
            raise ValueError("text must not be blank")
        if len(stripped) > MAX_TEXT_CHARS:
            raise ValueError(f"text must be at most {MAX_TEXT_CHARS} characters")
        return stripped


class JobAccepted(BaseModel):
    job_id: str
    status: str = "queued"


class JobResultBody(BaseModel):
    label: str
    score: float
    model_version: str
    probabilities: dict[str, float]


class JobBody(BaseModel):
    job_id: str
    status: str
    model_version: str | None
    result: JobResultBody | None
    error: str | None
    error_type: str | None
    retry_count: int
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
