"""The one root error type, the split between transient and permanent, and the domain's own error.

Every layer keeps its errors beside it (eventlog/errors.py, classifier/errors.py,
consumer/errors.py, projector/errors.py, api/errors.py), each a subclass of `TransientError` or
`PermanentError`, so whoever catches one knows whether retrying could help.
"""

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
