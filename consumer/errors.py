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


class RunEndedError(PermanentError):
    """The job ended while it ran (a cancel, or its deadline): its retries stop, and whatever
    the run would have written is dropped (eventlog.runs)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        super().__init__(f"job {job_id} ended while it ran")
