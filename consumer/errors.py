"""Errors of inference, under the one root (domain.errors)."""

from __future__ import annotations

from domain.errors import PermanentError, TransientError


class InferenceError(PermanentError):
    """The model raised while predicting; the input or the model is at fault."""


class TransientInferenceError(TransientError):
    """A passing fault while predicting (resource exhaustion, an injected fault)."""


class InferenceTimeoutError(PermanentError):
    """Inference ran longer than the configured limit."""

    def __init__(self, timeout_ms: int) -> None:
        self.timeout_ms = timeout_ms
        super().__init__(f"inference timed out after {timeout_ms} ms")
