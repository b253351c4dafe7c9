"""What the API reads of PostgreSQL on every request (a key, a tenant's limits), kept for a
short time, and kept as last known while PostgreSQL does not answer.

Jobs are accepted by the log (Redis), not by PostgreSQL: a database outage must not stop
submissions of clients whose keys this process knows. A value read is trusted for `ttl_s`
(AUTH_CACHE_MS), after which it is read again; when that read fails, the last value read is used
until PostgreSQL answers, and only what this process never read is refused (503).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar, cast

from cachetools import LRUCache, TTLCache

from api.errors import DependencyUnavailableError
from api.guard import guarded

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Values may be None (a key that is no key): absence needs a marker of its own.
_MISSING = object()


class ReadThrough(Generic[K, V]):
    def __init__(
        self,
        what: str,
        ttl_s: float,
        timeout_s: float,
        maxsize: int = 10_000,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._what = what
        self._timeout_s = timeout_s
        self._fresh: TTLCache[K, V] | None = (
            TTLCache(maxsize, ttl_s, timer=timer) if ttl_s > 0 else None
        )
        self._known: LRUCache[K, V] = LRUCache(maxsize)

    async def get(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        # One lookup, never `in` then `[]`: an entry can expire between the two.
        if self._fresh is not None:
            fresh = self._fresh.get(key, _MISSING)
            if fresh is not _MISSING:
                return cast(V, fresh)
        try:
            async with guarded("postgres", self._timeout_s):
                value = await read()
        except DependencyUnavailableError as exc:
            known = self._known.get(key, _MISSING)
            if known is _MISSING:
                raise
            log.warning("%s read as last known: %s", self._what, exc.reason)
            return cast(V, known)
        if self._fresh is not None:
            self._fresh[key] = value
        self._known[key] = value
        return value

    def forget(self, key: K | None = None) -> None:
        """Read `key` (every key, without one) again next time."""
        if key is None:
            self._known.clear()
            if self._fresh is not None:
                self._fresh.clear()
            return
        self._known.pop(key, None)
        if self._fresh is not None:
            self._fresh.pop(key, None)
