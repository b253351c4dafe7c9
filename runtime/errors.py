"""Errors of the runtime layer (what several roles share)."""

from __future__ import annotations

from domain.errors import PermanentError


class RefusedWebhookError(PermanentError):
    """A webhook URL that InferFlow will not call: not http(s), malformed, or (unless private
    networks are allowed) one whose host resolves to an address inside a private network."""
