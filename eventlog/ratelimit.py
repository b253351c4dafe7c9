"""Rate limits counted in Redis: GCRA over several buckets at once, all or nothing.

A bucket holds up to `burst` units and gets them back at `per_s` a second; a request takes
`cost` units from each of its buckets. The RATE_LIMIT script (eventlog/lua/rate_limit.lua)
checks and charges all of a request's buckets in one atomic step, on the Redis server's clock:
the request passes only if every bucket has room for its cost, and then every one is charged;
if any bucket refuses, none is. However many API processes share a limit, exactly `burst`
requests pass at once, and on a Redis Cluster too, since the buckets of one call carry one hash
tag (a tenant's, `Names.rate`), so the script runs in that slot.

A bucket's key is a string: its theoretical arrival time (GCRA's TAT), the server's time in
microseconds at which the bucket is full again. The key expires then, so idle buckets vanish.

A cost above a bucket's burst can never pass, however long the caller waits: the decision says
so (`never`) instead of naming a wait. The caller should split the work (a batch in parts of at
most the burst) or refuse it outright.

Redis errors propagate. redis-py may send a call again after a connection dropped before its
reply, which can charge a request twice: that errs on the side of the limit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eventlog import scripts
from eventlog.connection import AsyncClient

# The script's clock is in microseconds and it lets a request through up to 1 us early (float
# sums of intervals), so an interval must be far longer than that.
MAX_PER_S = 100_000.0
_US = 1_000_000


@dataclass(frozen=True, slots=True)
class Rate:
    """A sustained rate with a burst: `burst` units may pass at once, and they come back at
    `per_s` a second."""

    per_s: float
    burst: int

    def __post_init__(self) -> None:
        if not (0 < self.per_s <= MAX_PER_S):  # also refuses NaN
            raise ValueError(f"per_s must be above 0 and at most {MAX_PER_S:g}: {self.per_s}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1: {self.burst}")

    @property
    def interval_us(self) -> float:
        """The time one unit takes to come back (GCRA's emission interval), in microseconds."""
        return _US / self.per_s

    @property
    def window_s(self) -> int:
        """The time an empty bucket takes to fill, in whole seconds (rounded up, at least 1):
        the window over which `burst` units pass at the sustained rate."""
        # A hair off before rounding up: burst / per_s is a float (3 / 0.3 is 10.000000000000002).
        return max(1, math.ceil(self.burst / self.per_s - 1e-9))


@dataclass(frozen=True, slots=True)
class Bucket:
    """One limit a request is counted against. `name` is also its policy's name in the
    RateLimit header fields; `key` its Redis key (Names.rate); `cost` the units this request
    takes (1 for a request, n for a batch of n jobs; 0 only looks)."""

    name: str
    key: str
    rate: Rate
    cost: int

    def __post_init__(self) -> None:
        if self.cost < 0:
            raise ValueError(f"cost must not be negative: {self.cost}")


@dataclass(frozen=True, slots=True)
class BucketState:
    """A bucket right after a request: `remaining` whole units are left (nothing is charged
    when the request is refused, so they are what was there), and it is full again in
    `reset_s` seconds (rounded up). `refused`: this bucket had no room for the request's cost."""

    bucket: Bucket
    remaining: int
    reset_s: int
    refused: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a request passes its buckets, and their state after it.

    When refused, `retry_after_s` is the wait (whole seconds, rounded up, at least 1) after
    which the request would pass if nothing else were charged meanwhile; or, when `never`, 0:
    some bucket's cost is above its burst, and no wait helps.
    """

    allowed: bool
    states: tuple[BucketState, ...]
    retry_after_s: int
    never: bool = False

    @property
    def refused(self) -> tuple[BucketState, ...]:
        """The buckets that refused the request (none when it passed)."""
        return tuple(state for state in self.states if state.refused)


ALLOWED = Decision(allowed=True, states=(), retry_after_s=0)


def hash_tag(key: str) -> str:
    """The part of `key` that a Redis Cluster hashes: its hash tag, or the whole key."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


# How long a request's receipt is kept: longer than any call is sent again.
RECEIPT_MS = 60_000


def rate_limit_args(
    buckets: Sequence[Bucket], receipt: str | None = None
) -> tuple[list[str], list[str]]:
    """KEYS and ARGV for the RATE_LIMIT script; with `receipt` (a key of the buckets' hash
    tag, Names.rate_receipt), the request is charged once however often the call is sent."""
    keys = [bucket.key for bucket in buckets]
    if len({hash_tag(key) for key in [*keys, *([receipt] if receipt else [])]}) > 1:
        raise ValueError(f"the buckets of one call must share one hash tag: {keys}")
    keys = [receipt or keys[0], *keys]
    argv: list[str] = [str(RECEIPT_MS if receipt else 0)]
    for bucket in buckets:
        argv += [repr(bucket.rate.interval_us), str(bucket.rate.burst), str(bucket.cost)]
    return keys, argv


def _ceil_s(us: int) -> int:
    return -(-us // _US)


def parse_decision(buckets: Sequence[Bucket], reply: Sequence[Any]) -> Decision:
    """A RATE_LIMIT reply: {allowed, retry_us, then per bucket remaining, reset_us, verdict}."""
    values = [int(value) for value in reply]
    if len(values) != 2 + 3 * len(buckets):
        raise ValueError(f"{len(values)} values in a reply for {len(buckets)} buckets")
    allowed, retry_us = values[0] == 1, values[1]
    states = tuple(
        BucketState(
            bucket=bucket,
            remaining=values[2 + 3 * i],
            reset_s=_ceil_s(max(0, values[3 + 3 * i])),
            refused=values[4 + 3 * i] != 0,
        )
        for i, bucket in enumerate(buckets)
    )
    never = not allowed and retry_us < 0
    retry_after_s = 0 if allowed or never else max(1, _ceil_s(retry_us))
    return Decision(allowed=allowed, states=states, retry_after_s=retry_after_s, never=never)


class RateLimiter:
    """Counts requests against their buckets for an asyncio client (one server or a cluster)."""

    def __init__(self, client: AsyncClient) -> None:
        self._script = client.register_script(scripts.RATE_LIMIT)

    async def acquire(self, buckets: Sequence[Bucket], receipt: str | None = None) -> Decision:
        """Charge every bucket its cost if all have room, else none: one atomic script call.
        No buckets: allowed, without asking Redis. The buckets must share one hash tag. With
        `receipt`, a call sent again for the same request gets the first one's decision."""
        if not buckets:
            return ALLOWED
        keys, argv = rate_limit_args(buckets, receipt)
        reply = await self._script(keys=keys, args=argv)
        return parse_decision(buckets, reply)
