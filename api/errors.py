"""Errors of the API's own making, under the one root (domain.errors); api/problems.py turns
every error into its HTTP answer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from domain.errors import PermanentError, TransientError

if TYPE_CHECKING:
    from eventlog.ratelimit import Decision


class DependencyUnavailableError(TransientError):
    """Redis or PostgreSQL did not answer (in time)."""

    def __init__(self, dependency: str, reason: str) -> None:
        self.dependency = dependency
        self.reason = reason
        super().__init__(f"{dependency} unavailable: {reason}")


class IdempotencyKeyReusedError(PermanentError):
    """An Idempotency-Key sent again with a different request."""


class RefusedRequestError(PermanentError):
    """A request the API refuses before doing anything (a bad header, a malformed body)."""

    def __init__(
        self, slug: str, title: str, detail: str, status: int = 400, **extensions: Any
    ) -> None:
        self.slug, self.title, self.detail, self.status = slug, title, detail, status
        # Members of the problem detail besides the standard ones, for clients to act on.
        self.extensions = extensions
        super().__init__(detail)


class UnauthenticatedError(PermanentError):
    """No API key, or one that is not a live key (401). `reason` is RFC 6750's error code:
    None when no credentials came, "invalid_token" for a bad or revoked key."""

    def __init__(self, detail: str, reason: str | None = None) -> None:
        self.detail, self.reason = detail, reason
        super().__init__(detail)


class ForbiddenError(PermanentError):
    """A live key without the scope the route needs (403)."""

    def __init__(self, scope: str) -> None:
        self.scope = scope
        super().__init__(f"this API key lacks the {scope!r} scope")


class RateLimitedError(TransientError):
    """A request over one of its tenant's or key's limits (429): it may pass later, unless
    its decision says never (a batch larger than a burst)."""

    def __init__(self, decision: Decision, detail: str) -> None:
        self.decision, self.detail = decision, detail
        super().__init__(detail)


class QueueFullError(TransientError):
    """A tenant at its cap of unfinished jobs (429): a submission passes once some finish."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        super().__init__(f"tenant {tenant!r} has as many unfinished jobs as its cap allows")
