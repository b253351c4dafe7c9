"""Request and response bodies of the HTTP API, and the RFC 9457 problem details."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from api import deadlines
from api.keys import ApiKey, Scope
from domain.job import JobState, JobStatus
from domain.tenants import TENANT_PATTERN
from domain.webhooks import DEFAULT_FILTER, format_filter
from eventlog.ratelimit import MAX_PER_S
from runtime import webhookurls
from runtime.errors import RefusedWebhookError
from runtime.webhookurls import MAX_URL_CHARS

MAX_TEXT_CHARS = 5000
MAX_CUSTOM_ID_CHARS = 255
# The largest values PostgreSQL's integer and bigint columns hold.
MAX_INT32 = 2**31 - 1
MAX_INT64 = 2**63 - 1
EXAMPLE_JOB_ID = "01a2222c-2f5b-772f-b08b-c988cdc0bb63"
# An Idempotency-Key: printable ASCII; HTTP strips surrounding spaces, so a key can neither
# start nor end with one.
KEY_PATTERN = "^[!-~]([ -~]{0,253}[!-~])?$"


def _webhook_form(webhook: str) -> str:
    try:
        webhookurls.parse(webhook)
    except RefusedWebhookError as exc:
        raise ValueError(str(exc)) from exc
    return webhook


# A webhook URL of a form InferenceRequest calls (its host is checked when it is submitted).
WebhookUrl = Annotated[str, AfterValidator(_webhook_form)]
M = TypeVar("M", bound=BaseModel)


def _filter_with_webhook(model: M) -> M:
    filtered = getattr(model, "webhook_events_filter", None) is not None
    if filtered and getattr(model, "webhook", None) is None:
        raise ValueError("webhook_events_filter is given only with webhook")
    return model


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

    webhook: WebhookUrl | None = Field(
        default=None,
        max_length=MAX_URL_CHARS,
        description="An http(s) URL to POST the job to when it starts or completes (see "
        "`webhook_events_filter`), signed the Standard Webhooks way with the tenant's secret "
        "(GET /v1/webhooks/secret). The body is the job as GET /v1/jobs/{id} answers it. A URL "
        "whose host resolves to a loopback, private, link-local or metadata address is refused "
        "(422 webhook-refused) unless the server allows private networks.",
        examples=["https://example.com/hooks/inferflow"],
    )
    webhook_events_filter: list[Literal["started", "completed"]] | None = Field(
        default=None,
        min_length=1,
        description="When the webhook is sent: `started` (the job began) and `completed` (it "
        'succeeded, failed or was cancelled). `["completed"]` when omitted; only with '
        "`webhook`.",
    )

    @model_validator(mode="after")
    def _filter_needs_a_webhook(self) -> Self:
        return _filter_with_webhook(self)

    @property
    def webhook_filter(self) -> str:
        """The filter as the log keeps it (domain.webhooks.format_filter)."""
        return format_filter(self.webhook_events_filter or DEFAULT_FILTER)

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

    job_id: str = Field(
        description="The job's id: a UUID in canonical lowercase form whose first 48 bits are "
        "its creation time (Unix ms) and whose third group names its log partition (8PPP).",
    )
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
    cancel_reason: str | None = Field(
        default=None,
        description="Why a cancelled job was: requested (its cancel), batch_cancelled (its "
        "batch's), expired (its deadline passed before it started) or timed_out (its deadline "
        "passed while it ran).",
    )
    batch_id: str | None = Field(default=None, description="The batch it was submitted in.")
    custom_id: str | None = Field(default=None, description="Its custom_id in that batch.")
    deadline: datetime | None = Field(
        default=None, description="When it is cancelled unless it has ended (Cancel-After)."
    )

    @classmethod
    def of(cls, state: JobState) -> JobBody:
        result = state.result
        return cls(
            job_id=state.job_id,
            status=state.status,
            model_version=state.model_version,
            result=JobResultBody(
                label=result.label,
                score=result.score,
                model_version=result.model_version,
                probabilities=result.probabilities,
            )
            if result
            else None,
            error=state.error,
            error_type=state.error_type,
            retry_count=state.retry_count,
            attempts=state.attempts,
            created_at=state.created_at,
            started_at=state.started_at,
            finished_at=state.finished_at,
            updated_at=state.updated_at,
            cancel_reason=state.cancel_reason,
            batch_id=state.batch_id,
            custom_id=state.custom_id,
            deadline=state.deadline,
        )


class EventBody(BaseModel):
    entry_id: str = Field(description="Stream id of the event, e.g. `1795869653593-0`.")
    type: str = Field(description="`JobRequested`, `JobStarted`, `JobRetrying`, ...")
    schema_version: int = Field(description="Version the event is shown in (the current one).")
    occurred_at: datetime
    consumer: str | None = Field(description="The consumer that acted; null for requests.")
    attempt: int | None = Field(description="The attempt (1-based); null for requests.")
    payload: dict[str, Any] = Field(description="The event's own fields.")


class TimelineBody(BaseModel):
    job_id: str
    events: list[EventBody]


class HealthBody(BaseModel):
    status: Literal["ok"] = "ok"


class DependencyCheck(BaseModel):
    status: Literal["ok", "down", "behind"]
    reason: str | None = Field(default=None, description="Why a dependency is down.")
    lag_entries: int | None = Field(default=None, description="Projector only.")
    lag_seconds: float | None = Field(default=None, description="Projector only.")
    checkpoints: dict[str, dict[str, str]] | None = Field(
        default=None,
        description="Projector only: each partition's checkpoints by lane (`kind:tenant`): "
        "the last entry of the lane projected.",
    )


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


class RetiredProblem(ProblemDetails):
    """410: a submission for a retired model version."""

    replacement: str = Field(description="The version to send instead.")


class NotReadyProblem(ProblemDetails):
    """503 from /ready: which dependency is down or behind."""

    checks: dict[str, DependencyCheck]


# ---------------------------------------------------------------- POST /v1/inference/batch


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
        description="The client's name for the item, echoed in its answer and kept with the "
        "job (GET /v1/batches/{id}/results lists the batch's outcomes by it).",
    )
    cancel_after: str | None = Field(
        default=None,
        description="This item's Cancel-After (as the header of POST /v1/inference: a duration "
        "such as 30s or 1h30m, 1s to 7d); the request's Cancel-After header when omitted.",
        examples=["5m"],
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

    @field_validator("cancel_after")
    @classmethod
    def _duration(cls, cancel_after: str | None) -> str | None:
        if cancel_after is not None:
            deadlines.parse_ms(cancel_after)
        return cancel_after

    @property
    def cancel_after_ms(self) -> int | None:
        return None if self.cancel_after is None else deadlines.parse_ms(self.cancel_after)


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
    webhook: WebhookUrl | None = Field(
        default=None,
        max_length=MAX_URL_CHARS,
        description="An http(s) URL to POST the batch to once every one of its jobs is "
        "terminal: the batch as GET /v1/batches/{batch_id} answers it (its status and counts), "
        "signed as a job's webhook is. Refused as a whole (422 webhook-refused) by the rules of "
        "a job's `webhook`. Each item may name a webhook of its own besides.",
        examples=["https://example.com/hooks/batches"],
    )
    webhook_events_filter: list[Literal["started", "completed"]] | None = Field(
        default=None,
        min_length=1,
        description="When the batch's webhook is sent: `started` (a job of it has begun, or "
        'ended) and `completed` (every job of it is terminal). `["completed"]` when omitted. '
        "Only with `webhook`.",
    )

    @model_validator(mode="after")
    def _filter_needs_a_webhook(self) -> Self:
        return _filter_with_webhook(self)

    @property
    def webhook_filter(self) -> str:
        """The filter as the batch's record keeps it (domain.webhooks.format_filter)."""
        return format_filter(self.webhook_events_filter or DEFAULT_FILTER)


class ItemProblem(BaseModel):
    """Why one item was rejected: a problem detail as POST /v1/inference would answer it."""

    type: str = Field(
        description="urn:inferflow:problem:<name>: validation-error, unknown-model-version, "
        "model-retired or idempotency-key-reused.",
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
    replacement: str | None = Field(
        default=None, description="model-retired only: the version to send instead."
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
                    "batch_id": "7d1c1c55-58d9-4d0b-9a52-4b8c8f0b6f0e",
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

    batch_id: str = Field(
        description="The batch: GET /v1/batches/{batch_id} counts its jobs by status."
    )
    accepted: int = Field(ge=0, description="Items that created a job.")
    replayed: int = Field(ge=0, description="Items whose idempotency_key named a job already.")
    rejected: int = Field(ge=0, description="Items that created no job.")
    items: list[BatchItemResult] = Field(description="One per item, in the request's order.")


# ---------------------------------------------------------------- tenants and keys


def _no_boolean(value: Any) -> Any:
    # pydantic reads true as 1: a limit or a rate is a number, never a boolean.
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    return value


class KeyRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"tenant": "acme", "scopes": ["submit", "read"], "name": "acme backend"}]
        },
    )

    tenant: str = Field(pattern=TENANT_PATTERN, description="The tenant the key acts for.")
    scopes: list[Scope] = Field(
        min_length=1,
        description="What the key may do: `submit` jobs, `read` jobs and timelines, `cancel` "
        "jobs, `admin` (everything, for every tenant, and the keys themselves).",
    )
    name: str = Field(default="", max_length=128, description="For people: whose key it is.")
    requests_per_s: float | None = Field(
        default=None,
        gt=0,
        le=MAX_PER_S,
        description="This key's own request rate, within its tenant's.",
    )
    requests_burst: int | None = Field(
        default=None,
        ge=1,
        le=MAX_INT32,
        description="Requests this key may make at once (default: one second's worth of its rate).",
    )

    _numbers = field_validator("requests_per_s", "requests_burst", mode="before")(_no_boolean)

    @field_validator("name")
    @classmethod
    def _storable(cls, name: str) -> str:
        # PostgreSQL text cannot hold U+0000; refused here, it would fail the insert instead.
        if "\x00" in name or has_lone_surrogate(name):
            raise ValueError("name must not contain NUL or unpaired surrogates")
        return name


class KeyBody(BaseModel):
    key_id: str = Field(description="The key's id, for listings and revocation.")
    tenant: str
    scopes: list[Scope]
    name: str
    hint: str = Field(description="The key's first and last characters.")
    requests_per_s: float | None
    requests_burst: int | None
    created_at: datetime
    revoked_at: datetime | None = Field(description="When the key stopped working.")

    @classmethod
    def of(cls, key: ApiKey) -> KeyBody:
        return cls(
            key_id=key.key_id,
            tenant=key.tenant,
            scopes=sorted(key.scopes),
            name=key.name,
            hint=key.hint,
            requests_per_s=key.requests_per_s,
            requests_burst=key.requests_burst,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
        )


class KeyCreated(KeyBody):
    key: str = Field(
        description="The key itself: `Authorization: Bearer <key>`. Shown this once only; "
        "InferFlow keeps its hash."
    )


class KeyList(BaseModel):
    keys: list[KeyBody]


class LimitsBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"requests_per_s": 50, "jobs_per_s": 2000, "max_queued": 100000}]
        },
    )

    requests_per_s: float | None = Field(
        default=None,
        ge=0,
        le=MAX_PER_S,
        description="Requests per second, of all the tenant's keys; 0: none.",
    )
    requests_burst: int | None = Field(
        default=None,
        ge=1,
        le=MAX_INT32,
        description="Requests at once (default: one second's worth).",
    )
    jobs_per_s: float | None = Field(
        default=None,
        ge=0,
        le=MAX_PER_S,
        description="Jobs per second (a batch counts its items); 0: none.",
    )
    jobs_burst: int | None = Field(
        default=None,
        ge=1,
        le=MAX_INT32,
        description="Jobs at once (default: one second's worth); a "
        "batch larger than this is refused whole.",
    )
    max_queued: int | None = Field(
        default=None,
        ge=0,
        le=MAX_INT64,
        description="Most jobs accepted and not yet finished at once (a batch's items count "
        "one each); past it, 429 queue-full; 0: none.",
    )

    _numbers = field_validator(
        "requests_per_s", "requests_burst", "jobs_per_s", "jobs_burst", "max_queued", mode="before"
    )(_no_boolean)


class TenantLimitsBody(BaseModel):
    tenant: str
    own: LimitsBody = Field(description="The limits set for this tenant; null: the default.")
    effective: LimitsBody = Field(
        description="The limits in force: its own, else the server's defaults; null: no limit."
    )


# ---------------------------------------------------------------- webhooks


class WebhookSecretBody(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                    "previous_secret": None,
                    "previous_valid_until": None,
                    "created_at": "2026-11-28T12:40:50.779284Z",
                    "rotated_at": None,
                }
            ]
        }
    )

    secret: str = Field(
        description="The tenant's signing secret, Standard Webhooks' `whsec_` and base64 of 32 "
        "bytes: verify `webhook-signature` with it (see the README's receiver example)."
    )
    previous_secret: str | None = Field(
        description="The secret the last rotation replaced, while it is still valid: until "
        "then, every delivery carries a signature by each."
    )
    previous_valid_until: datetime | None = Field(
        description="When the previous secret stops signing deliveries."
    )
    created_at: datetime = Field(description="When the tenant's first secret was made.")
    rotated_at: datetime | None = Field(description="When the secret was last rotated.")
