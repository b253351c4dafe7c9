"""Cancel-After: how long a job may take before it is cancelled, as Replicate's header has it.

A duration is a bare number of seconds (`90`) or numbers with units, largest first, as Go writes
durations (`1h30m`, `45s`, `1500ms`, `2d`). It counts from the job's acceptance: a job not started
by then is cancelled as `expired`, one still running as `timed_out` (domain.cancellation).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

HEADER = "Cancel-After"
MIN_MS = 1_000
MAX_MS = 7 * 24 * 3600 * 1000

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_ORDER = ("d", "h", "m", "s", "ms")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_BARE = re.compile(r"\d+(?:\.\d+)?")

RULE = (
    "a duration of 1s to 7d: seconds (90), or numbers with units largest first "
    "(1h30m, 45s, 1500ms; units d, h, m, s, ms)"
)


def parse_ms(raw: str) -> int:
    """The duration in ms; ValueError saying the rule for anything else."""
    text = raw.strip()
    if _BARE.fullmatch(text):
        total = float(text) * 1000
    else:
        total, at, last = 0.0, 0, -1
        for part in _PART.finditer(text):
            rank = _ORDER.index(part.group(2))
            if part.start() != at or rank <= last:
                raise ValueError(f"{raw!r} is not {RULE}")
            total += float(part.group(1)) * _UNIT_MS[part.group(2)]
            at, last = part.end(), rank
        if not text or at != len(text):
            raise ValueError(f"{raw!r} is not {RULE}")
    ms = round(total)
    if not MIN_MS <= ms <= MAX_MS:
        raise ValueError(f"{raw!r} is not {RULE}")
    return ms


def deadline(accepted_at: datetime, cancel_after_ms: int | None) -> datetime | None:
    if cancel_after_ms is None:
        return None
    return accepted_at + timedelta(milliseconds=cancel_after_ms)
