"""Bodies of POST /v1/inference/batch: the envelope, one item, and the per-item answer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from api.routes.inference import KEY_PATTERN
from api.schemas import EXAMPLE_JOB_ID, FieldError, InferenceRequest, has_lone_surrogate

MAX_CUSTOM_ID_CHARS = 255


class BatchItem(InferenceRequest):
    """One job of a batch: InferenceRequest's fields and rules, plus its own id and key."""

    model_config = ConfigDict(
        title="BatchItem",
        json_schema_extra={
            "examples": [
                {"text": "limited time offer, click now", "custom_id": "msg-1"},
                {"text": "see you at seven", "idempotency_key": "order-4711-item-2"},
            ]
        },
    )

    custom_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CUSTOM_ID_CHARS,
        description="The client's name for the item, echoed in its answer; not stored.",
    )
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        pattern=KEY_PATTERN,
        description="Makes this item safe to send again, by the rules of the Idempotency-Key "
        "header of POST /v1/inference (keys are shared with it).",
    )

    @field_validator("custom_id")
    @classmethod
    def _encodable(cls, custom_id: str | None) -> str | None:
        # It is echoed in the answer, which must stay valid UTF-8.
        if custom_id is not None and has_lone_surrogate(custom_id):
            raise ValueError("custom_id must not contain unpaired surrogates")
        return custom_id


def _item_schema() -> dict[str, Any]:
    """Published as a BatchItem or anything else: an item that is not a valid BatchItem is
    rejected in the answer on its own, not with the whole request, so the schema must admit it.
    """
    item = BatchItem.model_json_schema()
    # InferenceRequest's words are about a whole request; here it is the item that is rejected.
    item["properties"]["model_version"]["description"] = (
        "Model to use; the server's default when omitted or null. An unknown version rejects "
        "this item (unknown-model-version)."
    )
    return {
        "description": "A job to accept, as BatchItem describes it. Any other value is "
        "rejected in the answer (status rejected, with the reason); the other items are still "
        "accepted.",
        "anyOf": [item, {}],
    }


_ITEM_SCHEMA = _item_schema()


class BatchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {"text": "limited time offer, click now", "custom_id": "msg-1"},
                        {"text": "see you at seven", "idempotency_key": "order-4711-item-2"},
                    ]
                }
            ]
        },
    )

    items: list[Annotated[Any, WithJsonSchema(_ITEM_SCHEMA)]] = Field(
        min_length=1,
        description="The jobs, 1 to BATCH_MAX_ITEMS (default 1000) of them; more is 422.",
    )


class ItemProblem(BaseModel):
    """Why one item was rejected: a problem detail as POST /v1/inference would answer it."""

    type: str = Field(
        description="urn:inferflow:problem:<name>: validation-error, unknown-model-version or "
        "idempotency-key-reused.",
        examples=["urn:inferflow:problem:validation-error"],
    )
    title: str
    detail: str
    errors: list[FieldError] = Field(
        default_factory=list,
        description="validation-error only: every invalid field, e.g. body.items.3.text.",
    )
    available: list[str] = Field(
        default_factory=list, description="unknown-model-version only: the versions known."
    )


class BatchItemResult(BaseModel):
    index: int = Field(ge=0, description="Position of the item in the request.")
    custom_id: str | None = Field(description="The item's custom_id, when it had a valid one.")
    status: Literal["accepted", "replayed", "rejected"] = Field(
        description="accepted: a new job; replayed: the job its idempotency_key already named; "
        "rejected: no job, see error."
    )
    job_id: str | None = Field(description="The job, unless the item was rejected.")
    error: ItemProblem | None = Field(description="Why the item was rejected.")


class BatchAccepted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "accepted": 1,
                    "replayed": 0,
                    "rejected": 1,
                    "items": [
                        {
                            "index": 0,
                            "custom_id": "msg-1",
                            "status": "accepted",
                            "job_id": EXAMPLE_JOB_ID,
                            "error": None,
                        },
                        {
                            "index": 1,
                            "custom_id": None,
                            "status": "rejected",
                            "job_id": None,
                            "error": {
                                "type": "urn:inferflow:problem:validation-error",
                                "title": "Invalid request",
                                "detail": "body.items.1.text: Value error, text must not be blank",
                                "errors": [
                                    {
                                        "field": "body.items.1.text",
                                        "message": "Value error, text must not be blank",
                                        "type": "value_error",
                                    }
                                ],
                            },
                        },
                    ],
                }
            ]
        }
    )

    accepted: int = Field(ge=0, description="Items that created a job.")
    replayed: int = Field(ge=0, description="Items whose idempotency_key named a job already.")
    rejected: int = Field(ge=0, description="Items that created no job.")
    items: list[BatchItemResult] = Field(description="One per item, in the request's order.")
