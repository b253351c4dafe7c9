"""Job ids: UUIDv7 (RFC 9562), so ids sort by creation time and index well."""

from __future__ import annotations

import os
import re
import time
import uuid


def new_job_id(now_ms: int | None = None) -> str:
    """A fresh UUIDv7: 48-bit Unix milliseconds, then 74 random bits."""
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | rand & ((1 << 80) - 1)
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 9562 variant
    return str(uuid.UUID(int=value))


# The canonical form `str(uuid.UUID(...))` gives: lowercase 8-4-4-4-12 hex. Matched rather than
# parsed: the projector checks every event's id, and parsing costs ten times as much.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_job_id(candidate: str) -> bool:
    """True for the canonical lowercase form of a UUID, the only form the API hands out."""
    return _CANONICAL_UUID.fullmatch(candidate) is not None
