"""One root error type; every subclass says whether retrying could help."""

from __future__ import annotations


class InferFlowError(Exception):
    """Root of every error InferFlow raises on purpose."""

    transient: bool = False


class TransientError(InferFlowError):
    """Worth retrying: the same work may succeed a moment later."""

    transient = True


class PermanentError(InferFlowError):
    """Not worth retrying: the same work will fail the same way."""

    transient = False


class InvalidEventError(PermanentError):
    """Stream fields that do not decode to a known event."""


class UnknownModelVersionError(PermanentError):
    """A model version that is not in the registry."""

    def __init__(self, version: str, known: tuple[str, ...] = ()) -> None:
        self.version = version
        self.known = known
        listing = ", ".join(known) if known else "none"
        super().__init__(f"unknown model version {version!r} (available: {listing})")


class InferenceTimeoutError(PermanentError):
    """Inference ran longer than the configured limit."""

    def __init__(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        super().__init__(f"inference timed out after {timeout_ms} ms")


class DeliveryLimitExceededError(PermanentError):
    """A request delivered so often without finishing that it is taken to kill its consumer."""

    def __init__(self, deliveries: int, limit: int) -> None:
        self.deliveries = deliveries
        self.limit = limit
        super().__init__(
            f"delivered {deliveries} times without finishing (limit {limit}); "
            "moved to the dead-letter stream"
        )


class InferenceError(PermanentError):
    """The model raised while predicting; the input or the model is at fault."""


class TransientInferenceError(TransientError):
    """A passing fault while predicting (resource exhaustion, an injected fault)."""


class DependencyUnavailableError(TransientError):
    """Redis or PostgreSQL did not answer."""

    def __init__(self, dependency: str, reason: str) -> None:
        self.dependency = dependency
        self.reason = reason
        super().__init__(f"{dependency} unavailable: {reason}")


class IdempotencyKeyReusedError(PermanentError):
    """An Idempotency-Key sent again with a different request."""
