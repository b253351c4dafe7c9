"""Job ids: UUIDs that sort by creation time and name the log partition that holds the job.

The layout is UUIDv7's (RFC 9562) with the 12 bits that v7 leaves to `rand_a` holding the
partition instead, which makes it a version 8 (custom) UUID:

    48 bits Unix ms | version 8 | 12 bits partition | variant | 62 random bits

so the partition reads off the id's third group: `...-8003-...` is partition 3. Nothing has to be
looked up to find a job's events, whatever the number of partitions is now: a job stays where
its id says. Ids from before partitions (version 7) are all partition 0.
"""

from __future__ import annotations

import os
import re
import time
import uuid

# Twelve bits of the id.
MAX_PARTITIONS = 4096


def new_job_id(partition: int = 0, now_ms: int | None = None) -> str:
    """A fresh id for a job in `partition`."""
    if not 0 <= partition < MAX_PARTITIONS:
        raise ValueError(f"partition {partition} outside 0..{MAX_PARTITIONS - 1}")
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & 0xFFFF_FFFF_FFFF) << 80 | 0x8 << 76 | partition << 64 | 0x2 << 62 | rand
    return str(uuid.UUID(int=value))


def partition_of(job_id: str) -> int:
    """The partition a job id names; 0 for an id of another version (made before partitions).
    `job_id` must be canonical (`is_job_id`)."""
    if job_id[14] != "8":
        return 0
    return int(job_id[15:18], 16)


# The canonical form `str(uuid.UUID(...))` gives: lowercase 8-4-4-4-12 hex. Matched rather than
# parsed: the projector checks every event's id, and parsing costs ten times as much.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_job_id(candidate: str) -> bool:
    """True for the canonical lowercase form of a UUID, the only form the API hands out."""
    return _CANONICAL_UUID.fullmatch(candidate) is not None
