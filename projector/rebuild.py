"""`python -m projector rebuild`: replay the whole log into a shadow table, swap it in live.

1. Fold each lane of each partition (the archive, then the lane's stream) into `jobs_rebuild`
   under its own checkpoint `jobs-rebuild` (a row per partition and lane), in batches, never
   past the live projector's checkpoint of that lane; the lanes in parallel, as many threads as
   partitions (a job's events are all in one lane, so two lanes never write one row). A crash
   loses nothing: the next run resumes from those checkpoints.
2. Once within `swap_within` entries of the live checkpoints, lock them all (the table of
   checkpoints: the live projectors move theirs in every batch, so they pause, and none can
   start a new lane meanwhile), apply the last entries of every lane the live projection has
   reached, swap the tables by renames and drop the rebuild checkpoints, all in one
   transaction.

The live projector then goes on from its own checkpoints, which the rebuilt rows now match; the
API reads `jobs` by name and never sees a gap.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, text
from sqlalchemy.exc import OperationalError

from eventlog.connection import Client
from eventlog.lanes import Lane, known_lanes
from eventlog.names import Names
from eventlog.positions import position
from projector import shadow
from projector.progress import Progress
from projector.source import LogSource
from projector.store import ProjectionStore
from readmodel import checkpoints
from readmodel.checkpoints import Checkpoint
from readmodel.tables import projector_checkpoints

log = logging.getLogger(__name__)

REBUILD_NAME = "jobs-rebuild"

# A lane of a partition: what a rebuild folds and checkpoints one by one.
Key = tuple[int, Lane]

# Holds off every write of checkpoints (the live projectors' batches, a first batch of a new
# lane, the trim's flush) and no read of them.
LOCK_CHECKPOINTS = "LOCK TABLE projector_checkpoints IN EXCLUSIVE MODE"


@dataclass(frozen=True, slots=True)
class RebuildOptions:
    live_name: str = "jobs"
    batch: int = 2000
    swap_within: int = 2000
    lock_timeout_ms: int = 5000
    fresh: bool = False


class _TooFarBehind(Exception):
    """The live projector ran ahead while the swap waited for it; catch up again first."""


def _order(key: Key) -> tuple[int, str]:
    return key[0], key[1].name


class Rebuild:
    def __init__(
        self,
        engine: Engine,
        client: Client,
        names: Names,
        options: RebuildOptions,
        partitions: Sequence[int] = (0,),
        report: Callable[[str], None] = print,
    ) -> None:
        self._engine = engine
        self._client = client
        self._names = names
        self._options = options
        self._partitions = tuple(partitions)
        self._stores = {
            p: ProjectionStore(engine, REBUILD_NAME, shadow.jobs_rebuild, partition=p)
            for p in self._partitions
        }
        self._sources: dict[Key, LogSource] = {}
        self._sources_lock = threading.Lock()
        self._progress = Progress(report)
        self._progress_lock = threading.Lock()
        self._report = report
        self._base = 0

    def run(self) -> dict[int, dict[Lane, Checkpoint]]:
        """Rebuild and swap; returns the position in each lane of each partition that the new
        `jobs` table holds (the lanes the live projection had reached)."""
        at = self._prepare()
        self._base = sum(c.entries_read for c in at.values())
        with ThreadPoolExecutor(max(len(self._partitions), 1), "rebuild") as pool:
            while True:
                with self._engine.connect() as conn:
                    live = self._live_checkpoints(conn)
                total = sum(c.entries_read for c in live.values())
                futures = {
                    key: pool.submit(self._catch_up, key, at.get(key, Checkpoint()), goal, total)
                    for key, goal in live.items()
                }
                at.update({key: future.result() for key, future in futures.items()})
                try:
                    done = self._swap(at)
                except _TooFarBehind:
                    continue
                except OperationalError as exc:  # lock_timeout: readers held `jobs`; try again
                    log.warning("swap did not get its locks (%s); retrying", exc.orig)
                    continue
                self._report(self._progress.line(self._progress.done) + " (swapped in)")
                return done

    def _prepare(self) -> dict[Key, Checkpoint]:
        """The shadow table and its checkpoints, all new or all resumed."""
        with self._engine.begin() as conn:
            resumable = shadow.exists(conn, shadow.SHADOW)
            stored = self._checkpoints(conn, REBUILD_NAME, lock=True)
            if self._options.fresh or not (resumable and stored):
                shadow.create(conn)
                self._clear_checkpoints(conn)
                # Rows from the start, so that a crash before the first batch resumes too.
                stored = dict.fromkeys(self._lanes(conn), Checkpoint())
                for (p, lane), checkpoint in stored.items():
                    self._stores[p].write_checkpoint(conn, checkpoint, lane)
        if resumed := sum(c.entries_read for c in stored.values()):
            self._report(f"rebuild: resuming after {resumed} events")
        return stored

    def _lanes(self, conn: Connection) -> list[Key]:
        """Every lane of the partitions: those registered in the log, and those the live
        projection has a checkpoint of."""
        found = set(self._live_checkpoints(conn))
        for p in self._partitions:
            found.update((p, lane) for lane in known_lanes(self._client, self._names, p))
        return sorted(found, key=_order)

    def _checkpoints(self, conn: Connection, name: str, lock: bool) -> dict[Key, Checkpoint]:
        """The checkpoints of projection `name` in the rebuilt partitions, by lane."""
        query = checkpoints.query_all(name).where(
            projector_checkpoints.c.partition.in_(self._partitions)
        )
        rows = conn.execute(query.with_for_update() if lock else query)
        return {
            (p, lane): checkpoint
            for p, lanes in checkpoints.by_partition_and_lane(rows).items()
            for lane, checkpoint in lanes.items()
        }

    def _live_checkpoints(self, conn: Connection) -> dict[Key, Checkpoint]:
        return self._checkpoints(conn, self._options.live_name, lock=False)

    def _clear_checkpoints(self, conn: Connection) -> None:
        table = projector_checkpoints
        conn.execute(
            delete(table).where(
                table.c.name == REBUILD_NAME, table.c.partition.in_(self._partitions)
            )
        )

    def _source(self, key: Key) -> LogSource:
        with self._sources_lock:
            if key not in self._sources:
                p, lane = key
                stream = self._names.lane(p, lane)
                self._sources[key] = LogSource(self._client, self._engine, stream, p, lane)
            return self._sources[key]

    def _catch_up(
        self, key: Key, checkpoint: Checkpoint, live: Checkpoint, total: int
    ) -> Checkpoint:
        """Apply the lane's batches up to its live checkpoint, each in its own transaction."""
        while position(checkpoint.last_entry_id) < position(live.last_entry_id):
            with self._engine.begin() as conn:
                after = self._apply_batch(conn, key, checkpoint, live.last_entry_id)
            if after == checkpoint:
                break  # the log lost these entries (trimmed before the archive existed)
            with self._progress_lock:
                done = after.entries_read - checkpoint.entries_read
                self._progress.advance(done, total - self._base)
            checkpoint = after
        return checkpoint

    def _apply_batch(
        self, conn: Connection, key: Key, checkpoint: Checkpoint, until: str
    ) -> Checkpoint:
        p, lane = key
        source = self._source(key)
        entries, archived = source.batch(checkpoint.last_entry_id, until, self._options.batch)
        # Entries read from the stream are archived too: this fills the archive in for logs
        # that were projected before it existed.
        store = self._stores[p]
        return store.apply_in(conn, checkpoint, entries, archives=not archived, lane=lane)

    def _swap(self, at: dict[Key, Checkpoint]) -> dict[int, dict[Lane, Checkpoint]]:
        with self._engine.begin() as conn:
            conn.execute(text(LOCK_CHECKPOINTS))
            budget = [self._options.swap_within]
            done: dict[int, dict[Lane, Checkpoint]] = {p: {} for p in self._partitions}
            live = self._live_checkpoints(conn)
            for key in sorted(live, key=_order):
                final = self._final_batches(conn, key, at.get(key, Checkpoint()), live[key], budget)
                done[key[0]][key[1]] = final
            shadow.swap(conn, self._options.lock_timeout_ms)
            self._clear_checkpoints(conn)
        log.info(
            "rebuild swapped in at %s",
            {
                f"{p}/{lane.name}": c.last_entry_id
                for p, lanes in done.items()
                for lane, c in lanes.items()
            },
        )
        return done

    def _final_batches(
        self,
        conn: Connection,
        key: Key,
        checkpoint: Checkpoint,
        live: Checkpoint,
        budget: list[int],
    ) -> Checkpoint:
        """The entries the live projector applied since the last catch-up, under its lock."""
        while position(checkpoint.last_entry_id) < position(live.last_entry_id):
            after = self._apply_batch(conn, key, checkpoint, live.last_entry_id)
            if after == checkpoint:
                break
            budget[0] -= after.entries_read - checkpoint.entries_read
            if budget[0] < 0:
                raise _TooFarBehind
            checkpoint = after
        return checkpoint
