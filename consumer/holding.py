"""The entries a consumer holds, kept fresh by a heartbeat so no one claims a live job.

Redis Streams count an entry as abandoned once it has been idle for `claim_idle_ms`. A job that
runs longer (retries with backoff, a slow model) would then be claimed by another consumer and
run twice. While a consumer works, a background thread resets the idle time of everything it
holds; when it stops, what it has not started is handed back at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import redis

from infra.eventlog import RESET_IDLE_SCRIPT
from infra.names import Names

log = logging.getLogger(__name__)


class HeldEntries:
    def __init__(
        self, client: redis.Redis, names: Names, consumer: str, claim_idle_ms: int
    ) -> None:
        self._redis = client
        self._names = names
        self._consumer = consumer
        self._claim_idle_ms = claim_idle_ms
        self._reset = client.register_script(RESET_IDLE_SCRIPT)
        self._ids: set[str] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def hold(self, entry_ids: Iterable[str]) -> None:
        with self._lock:
            self._ids.update(entry_ids)

    def release(self, *entry_ids: str) -> None:
        with self._lock:
            self._ids.difference_update(entry_ids)

    def hand_back(self) -> int:
        """Make every held entry claimable by other consumers now; returns how many."""
        with self._lock:
            ids, self._ids = sorted(self._ids), set()
        return self._set_idle(ids, self._claim_idle_ms) if ids else 0

    def close(self) -> None:
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def _beat(self) -> None:
        interval_s = self._claim_idle_ms / 3000
        while not self._closed.wait(interval_s):
            with self._lock:
                ids = sorted(self._ids)
            if not ids:
                continue
            try:
                self._set_idle(ids, 0)
            except redis.RedisError as exc:
                log.warning("heartbeat failed (%s); held entries may be claimed", exc)

    def _set_idle(self, ids: list[str], idle_ms: int) -> int:
        argv = [self._names.workers_group, self._consumer, str(idle_ms), *ids]
        return int(self._reset(keys=[self._names.events], args=argv))
