"""The projector loop of one partition: read its lanes after their checkpoints, apply, repeat.

A partition's log is several streams, its lanes (eventlog.lanes): one per tenant and kind of
job. Each lane has its own checkpoint, and each step serves them in an order that keeps one
tenant's backlog from holding up another tenant's jobs, and bulk work from holding up
interactive work:

1. one XREAD over every interactive lane, from their checkpoints (COUNT `read_count`, no
   block); if it gave entries, apply them (one transaction that moves each lane's checkpoint),
   announce the terminal jobs, and go round again;
2. else, if the set of lanes grew (SCARD), find the new lanes and read the interactive ones
   again; if still nothing, one XREAD over every bulk lane, each lane up to an equal share of
   `bulk_read_count` (at least one entry), so the tenants' backlogs share a round equally, and
   apply them;
3. if nothing at all, look for new lanes, then one blocking XREAD over all of them (BLOCK
   `read_block_ms`, at most `lanes_refresh_ms`; COUNT a bulk share when there are bulk lanes).

A round of bulk work is what an interactive entry can find the projector busy with, so
`bulk_read_count` bounds the wait that bulk backlogs add to interactive jobs: a few hundred
entries, tens of milliseconds, and about the drain rate of rounds of `read_count`. A running
projector (projector.fleet) therefore serves each kind of lane in a thread and a transaction of
its own (`serves`): an interactive entry is applied while a bulk round is, not after it. Lanes are
found (`known_lanes`) at start, every `lanes_refresh_ms`, whenever every lane came back empty and
when the set of lanes grew before a bulk round. A partition's lanes share its hash tag, so one
XREAD reads many of them on a Redis Cluster too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import redis
from psycopg.errors import UndefinedTable
from sqlalchemy.exc import OperationalError, ProgrammingError

from eventlog.connection import Client
from eventlog.entries import entries_by_stream
from eventlog.lanes import Lane, known_lanes, served_first
from projector import notify, retention, telemetry
from projector.errors import CheckpointMovedError
from projector.settings import ProjectorSettings
from projector.store import LaneBatch, ProjectionStore, decode_entries
from readmodel.checkpoints import Checkpoint

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


def _pause(stop: threading.Event, backoff_s: float) -> float:
    """Wait `backoff_s` (or until stopped); the next, doubled wait, at most 5 s."""
    stop.wait(backoff_s)
    return min(backoff_s * 2, 5.0)


def _always() -> bool:
    return True


# Each lane of a partition this projector serves, and its checkpoint.
Positions = Mapping[Lane, Checkpoint]

# Which of a partition's lanes a projector serves: every one (rebuilds, tests, one thread), or
# one kind (a running projector's two threads per partition, projector.fleet).
LaneKinds = Literal["all", "interactive", "bulk"]


def entries_read(positions: Positions) -> int:
    """How many entries the lanes' checkpoints have passed, all lanes together."""
    return sum(checkpoint.entries_read for checkpoint in positions.values())


def bulk_share(budget: int, lanes: int) -> int:
    """How many entries each of `lanes` bulk lanes may give to one round of `budget`: an equal
    share, and at least one."""
    return max(1, budget // max(lanes, 1))


class Projector:
    """Projects the lanes of the partition of its store."""

    def __init__(
        self,
        settings: ProjectorSettings,
        client: Client,
        store: ProjectionStore,
        serves: LaneKinds = "all",
    ) -> None:
        self._settings = settings
        self.serves = serves
        self._redis = client
        self._store = store
        self.partition = store.partition
        self._names = settings.names
        self._channel = settings.names.terminal
        self._next_trim = time.monotonic() + settings.trim_interval_s
        self._next_lanes = 0.0  # when to look for new lanes (time.monotonic)
        self._lanes: list[Lane] = []  # in the order they are served (eventlog.lanes)
        self._interactive: list[Lane] = []
        self._bulk: list[Lane] = []
        self._streams: dict[str, Lane] = {}
        self._stream_names: dict[Lane, str] = {}
        self._registered = -1  # the size of the set of lanes when last asked (SCARD)
        # The last step applied interactive entries only: the bulk lanes go first next, so a
        # steady stream of interactive work cannot starve them (every other step at worst).
        self._bulk_turn = False

    @property
    def lanes(self) -> list[Lane]:
        """The lanes served, as last found."""
        return list(self._lanes)

    def run(self, stop: threading.Event, entitled: Callable[[], bool] = _always) -> None:
        """Project until `stop` is set, or until `entitled` says this process no longer holds
        the partition (its lease, projector.leases)."""
        positions: Positions | None = None
        backoff_s = 0.1
        while not stop.is_set() and entitled():
            try:
                positions = self.positions() if positions is None else positions
                before = entries_read(positions)
                positions = self.step(positions)
                self._maybe_trim()
                backoff_s = 0.1
                applied = entries_read(positions) - before
                if linger := linger_s(applied, self._settings.linger_ms):
                    stop.wait(linger)
            except CheckpointMovedError as exc:
                log.warning("%s; reloading the checkpoints", exc)
                positions = None
            except (redis.RedisError, OperationalError) as exc:
                log.warning("dependency unavailable (%s); retrying in %.1f s", exc, backoff_s)
                positions = None
                backoff_s = _pause(stop, backoff_s)
            except ProgrammingError as exc:
                if not isinstance(exc.orig, UndefinedTable):
                    raise
                # Started before the migration (a Kubernetes Job, say): wait for the tables
                # rather than exit and be restarted with the orchestrator's growing back-off.
                log.warning("tables missing, waiting for the migration: %s", exc.orig)
                positions = None
                backoff_s = _pause(stop, backoff_s)

    def positions(self) -> dict[Lane, Checkpoint]:
        """Every lane of the partition (those registered, and any with a checkpoint) at its
        stored checkpoint: where projecting starts, or starts again."""
        stored = {lane: at for lane, at in self._store.checkpoints().items() if self._serving(lane)}
        self._next_lanes = time.monotonic() + self._settings.lanes_refresh_ms / 1000
        # Counted first: a lane registered in between is found now and counted once more.
        self._registered = int(self._redis.scard(self._names.lanes(self.partition)))
        registered = known_lanes(self._redis, self._names, self.partition)
        positions = {
            lane: stored.get(lane, Checkpoint()) for lane in registered if self._serving(lane)
        }
        positions.update(stored)
        self._serve(positions)
        return positions

    def _serving(self, lane: Lane) -> bool:
        if self.serves == "all":
            return True
        return lane.interactive == (self.serves == "interactive")

    def _maybe_trim(self) -> None:
        interval = self._settings.trim_interval_s
        # Trimming covers every lane of the partition: the bulk lanes' thread does it.
        if self.serves == "interactive" or not interval or time.monotonic() < self._next_trim:
            return
        self._next_trim = time.monotonic() + interval
        names, keep = self._settings.names, self._settings.trim_keep_seconds
        retention.trim(self._redis, names, self._store, keep)

    def step(self, positions: Positions, block_ms: int | None = None) -> dict[Lane, Checkpoint]:
        """Read one batch after `positions` (the interactive lanes', else the bulk lanes', else
        whatever comes first within `block_ms`) and apply it; returns the new positions. After
        a step of interactive entries only, the bulk lanes are read first."""
        positions = self._found(positions, force=False)
        settings = self._settings
        bulk_turn, self._bulk_turn = self._bulk_turn and bool(self._bulk), False
        read: list[LaneBatch] = []
        if bulk_turn:
            read = self._read(self._bulk, positions, self._bulk_share())
        if not read:
            read = self._read(self._interactive, positions, settings.read_count)
            if not read and self._bulk and self._interactive_too() and self._lanes_grew():
                positions = self._found(positions, force=True)
                read = self._read(self._interactive, positions, settings.read_count)
            self._bulk_turn = bool(read)
        if not read and self._bulk and not bulk_turn:
            read = self._read(self._bulk, positions, self._bulk_share())
        if not read:
            positions = self._found(positions, force=True)
            block = settings.read_block_ms if block_ms is None else block_ms
            if block:
                # A lane registered meanwhile is read from its next discovery on: the wait is
                # never longer than the time between two. Bulk entries that end the wait come
                # in a bulk round's share at most, as in step 2.
                wait = min(block, settings.lanes_refresh_ms)
                if not self._lanes:  # none of this projector's kind yet: nothing to block on
                    time.sleep(wait / 1000)
                    return dict(positions)
                count = settings.read_count
                if self._bulk:
                    count = min(count, self._bulk_share())
                read = self._read(self._lanes, positions, count, wait)
        if not read:
            return dict(positions)
        return self._apply(positions, read)

    def _interactive_too(self) -> bool:
        # Only a projector of every lane reads bulk rounds that a new interactive lane's first
        # entry could wait behind.
        return self.serves == "all"

    def _bulk_share(self) -> int:
        return bulk_share(self._settings.bulk_read_count, len(self._bulk))

    def _apply(self, positions: Positions, read: list[LaneBatch]) -> dict[Lane, Checkpoint]:
        began = time.perf_counter()
        after, rows = self._store.apply_lanes(read)
        applied_s = time.perf_counter() - began
        # Right after the commit, before telemetry: the waiting clients are the latency path.
        notify.publish_terminal(self._redis, self._channel, rows)
        moved = {**positions, **after}
        telemetry.batch_applied(self.partition, read, moved, applied_s)
        return moved

    def _read(
        self,
        lanes: Sequence[Lane],
        positions: Positions,
        count: int,
        block_ms: int | None = None,
    ) -> list[LaneBatch]:
        """One XREAD over `lanes` after their checkpoints, each lane up to `count` entries, the
        entries decoded (once, for the store and for telemetry)."""
        if not lanes:
            return []
        streams = {self._stream_of(lane): positions.get(lane, Checkpoint()) for lane in lanes}
        reply = self._redis.xread(
            {stream: at.last_entry_id for stream, at in streams.items()},
            count=count,
            block=block_ms or None,  # BLOCK 0 would wait forever
        )
        batches = []
        for stream, entries in entries_by_stream(reply).items():
            lane = self._streams[stream]
            batches.append(LaneBatch(lane, streams[stream], entries, decode_entries(entries)))
        return batches

    def _lanes_grew(self) -> bool:
        """Whether the set of lanes changed since this was last asked: asked before a round of
        bulk work, which an interactive entry may wait behind, so that a new tenant's first job
        is read now rather than at the next refresh. One small round trip."""
        registered = int(self._redis.scard(self._names.lanes(self.partition)))
        grew, self._registered = registered != self._registered, registered
        return grew

    def _found(self, positions: Positions, force: bool) -> Positions:
        """`positions` with the lanes registered since they were last looked for, when it is
        time to look (`force`: now), each at its stored checkpoint (none: the start)."""
        now = time.monotonic()
        if not force and now < self._next_lanes and self._lanes:
            return positions
        self._next_lanes = now + self._settings.lanes_refresh_ms / 1000
        registered = known_lanes(self._redis, self._names, self.partition)
        new = [lane for lane in registered if lane not in positions and self._serving(lane)]
        if new or not self._lanes:
            stored = self._store.checkpoints() if new else {}
            positions = {**positions, **{lane: stored.get(lane, Checkpoint()) for lane in new}}
            if new:
                log.info(
                    "partition %d: projecting lanes %s",
                    self.partition,
                    ", ".join(lane.name for lane in new),
                )
            self._serve(positions)
        return positions

    def _serve(self, positions: Positions) -> None:
        self._lanes = served_first(list(positions))
        self._interactive = [lane for lane in self._lanes if lane.interactive]
        self._bulk = [lane for lane in self._lanes if not lane.interactive]
        self._streams = {self._names.lane(self.partition, lane): lane for lane in self._lanes}
        self._stream_names = {lane: stream for stream, lane in self._streams.items()}

    def _stream_of(self, lane: Lane) -> str:
        stream = self._stream_names.get(lane)
        return self._names.lane(self.partition, lane) if stream is None else stream

    def catch_up(self) -> dict[Lane, Checkpoint]:
        """Apply everything in the log now (tests and rebuilds); returns every lane's
        checkpoint."""
        positions = self.positions()
        while True:
            after = self.step(positions, block_ms=0)
            if after == positions:
                return after
            positions = after
