"""When to send a request again, and after how long.

Only answers that say "later" are retried: 429 and 503 (and 502/504 from a proxy in front),
and connections that failed or broke. Every request the client retries is safe to send twice:
reads, cancels (a repeated cancel is harmless), and submissions, which always carry an
Idempotency-Key, so a retry of one that was in fact accepted replays its job."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

RETRIED_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """`max_retries` retries at most, the n-th after `initial_s * 2**n` seconds (jittered,
    at most `max_delay_s`) unless the answer's Retry-After says otherwise; a Retry-After longer
    than `max_delay_s` is not waited for (the error is raised)."""

    max_retries: int = 8
    initial_s: float = 0.25
    max_delay_s: float = 30.0

    def backoff(self, retry: int) -> float:
        base = min(self.max_delay_s, self.initial_s * 2.0**retry)
        return base * random.uniform(0.5, 1.0)

    def delay(self, retry: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before retry number `retry` (0-based), or None not to retry."""
        if retry >= self.max_retries:
            return None
        if response is None:
            return self.backoff(retry)
        if response.status_code not in RETRIED_STATUSES:
            return None
        after = retry_after(response.headers.get("retry-after"))
        if after is None:
            # A 429 without Retry-After can never pass (a batch larger than the burst).
            return None if response.status_code == 429 else self.backoff(retry)
        return after if after <= self.max_delay_s else None


NO_RETRIES = RetryPolicy(max_retries=0)


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After's seconds: delay-seconds or an HTTP-date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def retryable_exception(exc: Exception) -> bool:
    """Whether a transport error leaves the request safe and worth sending again."""
    return isinstance(exc, httpx.TransportError) and not isinstance(
        exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError
    )
