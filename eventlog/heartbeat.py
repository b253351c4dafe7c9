"""The entries a consumer holds, kept fresh by a heartbeat so no one claims a live job.

Redis Streams count an entry as abandoned once it has been idle for `claim_idle_ms`. A job that
runs longer (retries with backoff, a slow model) would then be claimed by another consumer and
run twice. While a consumer works, a background thread resets the idle time of everything it
holds; when it stops, what it has not started is handed back at once.

One heartbeat serves every stream a consumer reads in its group (a partition's lanes): the
entries are held by stream, and each beat resets each stream's with one RESET_IDLE.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

import redis

from eventlog import scripts
from eventlog.connection import Client

log = logging.getLogger(__name__)


class HeldEntries:
    def __init__(self, client: Client, group: str, consumer: str, claim_idle_ms: int) -> None:
        self._redis = client
        self._group = group
        self._consumer = consumer
        self._claim_idle_ms = claim_idle_ms
        self._reset = client.register_script(scripts.RESET_IDLE)
        self._ids: dict[str, set[str]] = {}  # stream -> entry ids
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def hold(self, stream: str, entry_ids: Iterable[str]) -> None:
        with self._lock:
            self._ids.setdefault(stream, set()).update(entry_ids)

    def release(self, stream: str, *entry_ids: str) -> None:
        with self._lock:
            held = self._ids.get(stream)
            if held is None:
                return
            held.difference_update(entry_ids)
            if not held:
                del self._ids[stream]

    def by_stream(self) -> dict[str, list[str]]:
        """What is held now: stream -> entry ids, in order."""
        with self._lock:
            return {stream: sorted(ids) for stream, ids in self._ids.items()}

    def hand_back(self) -> int:
        """Make every held entry, of every stream, claimable by other consumers now; returns
        how many."""
        with self._lock:
            held = {stream: sorted(ids) for stream, ids in self._ids.items()}
            self._ids = {}
        handed, failure = 0, None
        for stream, ids in held.items():
            try:
                handed += self._set_idle(stream, ids, self._claim_idle_ms)
            except redis.RedisError as exc:  # the other streams' entries still go back
                failure = failure or exc
        if failure is not None:
            raise failure
        return handed

    def close(self) -> None:
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def _beat(self) -> None:
        interval_s = self._claim_idle_ms / 3000
        while not self._closed.wait(interval_s):
            for stream, ids in self.by_stream().items():
                try:
                    self._set_idle(stream, ids, 0)
                except redis.RedisError as exc:
                    log.warning(
                        "heartbeat failed (%s); held entries may be claimed",
                        exc,
                        extra={"stream": stream},
                    )

    def _set_idle(self, stream: str, ids: list[str], idle_ms: int) -> int:
        argv = [self._group, self._consumer, str(idle_ms), *ids]
        return int(self._reset(keys=[stream], args=argv))
