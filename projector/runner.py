"""The projector loop: read the log after the checkpoint, apply, repeat."""

from __future__ import annotations

import logging
import threading
import time

import redis
from sqlalchemy.exc import OperationalError

from infra.eventlog import stream_entries
from projector import metrics, notify, retention, telemetry
from projector.settings import ProjectorSettings
from projector.store import Checkpoint, CheckpointMovedError, ProjectionStore, decode_entries

log = logging.getLogger(__name__)


# Batches smaller than this never linger: one client's job is one, two or three entries.
LINGER_MIN_ENTRIES = 3


def linger_s(applied: int, linger_ms: int) -> float:
    """How long to wait before the next read, after a batch of `applied` entries.

    Each batch costs the projector and PostgreSQL about the same whatever its size, so on a
    host whose cores are all busy, many small batches take CPU the API and the consumers need.
    Waiting a millisecond per entry just applied, up to `linger_ms`, lets the batches grow
    while the log is busy (bigger batches, longer waits, up to the cap) and costs nothing
    while it is quiet. The price is up to `linger_ms` more latency per job under load, so it is
    off by default: it pays only where the CPU, not the clients, is the limit.
    """
    if applied < LINGER_MIN_ENTRIES:
        return 0.0
    return min(applied, linger_ms) / 1000


class Projector:
    def __init__(
        self, settings: ProjectorSettings, client: redis.Redis, store: ProjectionStore
    ) -> None:
        self._settings = settings
        self._redis = client
        self._store = store
        self._stream = settings.names.events
        self._channel = settings.names.terminal
        self._next_trim = time.monotonic() + settings.trim_interval_s

    def run(self, stop: threading.Event) -> None:
        metrics.serve(self._settings.metrics_port, self._redis, self._settings.names)
        checkpoint: Checkpoint | None = None
        backoff_s = 0.1
        while not stop.is_set():
            try:
                checkpoint = checkpoint or self._store.checkpoint()
                before = checkpoint.entries_read
                checkpoint = self.step(checkpoint)
                self._maybe_trim()
                backoff_s = 0.1
                if linger := linger_s(checkpoint.entries_read - before, self._settings.linger_ms):
                    stop.wait(linger)
            except CheckpointMovedError as exc:
                log.warning("%s; reloading the checkpoint", exc)
                checkpoint = None
            except (redis.RedisError, OperationalError) as exc:
                log.warning("dependency unavailable (%s); retrying in %.1f s", exc, backoff_s)
                checkpoint = None
                stop.wait(backoff_s)
                backoff_s = min(backoff_s * 2, 5.0)

    def _maybe_trim(self) -> None:
        interval = self._settings.trim_interval_s
        if not interval or time.monotonic() < self._next_trim:
            return
        self._next_trim = time.monotonic() + interval
        names, keep = self._settings.names, self._settings.trim_keep_seconds
        retention.trim(self._redis, names, self._store, keep)

    def step(self, checkpoint: Checkpoint, block_ms: int | None = None) -> Checkpoint:
        """Read one batch after `checkpoint` and apply it; returns the new checkpoint."""
        block = self._settings.read_block_ms if block_ms is None else block_ms
        reply = self._redis.xread(
            {self._stream: checkpoint.last_entry_id},
            count=self._settings.read_count,
            block=block or None,  # BLOCK 0 would wait forever
        )
        entries = stream_entries(reply)
        began = time.perf_counter()
        events = decode_entries(entries)  # once, for the store and for telemetry
        after, rows = self._store.apply_returning_rows(checkpoint, entries, events)
        applied_s = time.perf_counter() - began
        # Right after the commit, before telemetry: the waiting clients are the latency path.
        notify.publish_terminal(self._redis, self._channel, rows)
        telemetry.batch_applied(entries, after, applied_s, events)
        return after

    def catch_up(self) -> Checkpoint:
        """Apply everything in the log now (tests and rebuilds)."""
        checkpoint = self._store.checkpoint()
        while True:
            after = self.step(checkpoint, block_ms=0)
            if after == checkpoint:
                return after
            checkpoint = after
