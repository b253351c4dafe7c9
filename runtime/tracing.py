"""W3C trace context (https://www.w3.org/TR/trace-context/) carried through the event log.

The API stores the submitting request's `traceparent` in the JobRequested event (a new one when
the request had none or an invalid one), so the consumer's and the projector's log lines for a
job carry the same `trace_id` as the request that created it.
"""

from __future__ import annotations

import os
import re

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_INVALID_TRACE_ID = "0" * 32
_INVALID_SPAN_ID = "0" * 16


def is_valid(traceparent: str) -> bool:
    match = _TRACEPARENT.fullmatch(traceparent)
    return match is not None and match[1] != _INVALID_TRACE_ID and match[2] != _INVALID_SPAN_ID


def new_traceparent() -> str:
    """A fresh trace (not sampled: flags 00), so a job's log lines correlate even untraced."""
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-00"


def accept(header: str | None) -> str:
    """The traceparent to store for a request: its own when valid, else a fresh one."""
    value = (header or "").strip()
    return value if is_valid(value) else new_traceparent()


def trace_id(traceparent: str) -> str:
    """The trace id of a traceparent; "" when it is empty or malformed."""
    return traceparent.split("-")[1] if is_valid(traceparent) else ""
