"""Errors of the projector's own making, under the one root (domain.errors)."""

from __future__ import annotations

from domain.errors import PermanentError, TransientError


class CheckpointMovedError(TransientError):
    """Another projector applied events since this one read its checkpoint: reload it."""


class PartitionThreadError(PermanentError):
    """One partition's thread of a projector process ended with an error the loop does not
    retry: the process stops instead of running on without that partition."""
