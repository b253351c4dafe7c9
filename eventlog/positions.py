"""Stream ids: `<ms>-<seq>`, Redis's clock in milliseconds and a sequence within it.

They order as the pair of numbers, not as text ("9-0" comes before "10-0"), so every comparison
of positions goes through `position`.
"""

from __future__ import annotations

import time

# Before the first entry: XREAD and XRANGE after it read the whole stream.
START = "0-0"


def position(entry_id: str) -> tuple[int, int]:
    """A stream id as the (ms, seq) pair it is ordered by."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def entry_ms(entry_id: str) -> int:
    """The Unix milliseconds at which Redis added the entry."""
    return position(entry_id)[0]


def age_seconds(entry_id: str) -> float:
    """How long ago Redis added the entry; never negative."""
    return max(time.time() * 1000 - entry_ms(entry_id), 0.0) / 1000


def latest(*entry_ids: str) -> str:
    """The furthest of the positions."""
    return max(entry_ids, key=position)


def earliest(*entry_ids: str) -> str:
    """The earliest of the positions."""
    return min(entry_ids, key=position)
