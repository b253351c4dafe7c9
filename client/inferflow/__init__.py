"""InferFlow's Python client: `Client` (blocking) and `AsyncClient` (asyncio), typed results,
problem details as exceptions, retries that never make a job twice, and `verify_webhook`."""

from inferflow.aio import AsyncClient
from inferflow.client import Client
from inferflow.errors import (
    Conflict,
    ConnectionFailed,
    Forbidden,
    Gone,
    InferFlowError,
    Invalid,
    NotFound,
    ProblemError,
    RateLimited,
    ServerError,
    Unauthorized,
    Unavailable,
)
from inferflow.retrying import RetryPolicy
from inferflow.types import (
    BadLine,
    Batch,
    BatchCounts,
    Event,
    FileAccepted,
    Item,
    Job,
    ManySubmitted,
    Problem,
    Result,
    ResultLine,
)
from inferflow.webhooks import WebhookVerificationError, verify_webhook

__all__ = [
    "AsyncClient",
    "BadLine",
    "Batch",
    "BatchCounts",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Event",
    "FileAccepted",
    "Forbidden",
    "Gone",
    "InferFlowError",
    "Invalid",
    "Item",
    "Job",
    "ManySubmitted",
    "NotFound",
    "Problem",
    "ProblemError",
    "RateLimited",
    "Result",
    "ResultLine",
    "RetryPolicy",
    "ServerError",
    "Unauthorized",
    "Unavailable",
    "WebhookVerificationError",
    "verify_webhook",
]
